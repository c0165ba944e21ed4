package resp

import (
	"bytes"
	"fmt"
)

// replyState is how far the Reader got into a reply that is not yet wholly
// buffered, so that the next read resumes there: an array of a million small
// elements, or a 64 MiB bulk, arriving in many reads is scanned once.
// Offsets are relative to the frame start.
type replyState struct {
	pos   int     // start of the next line, or of the pending payload
	scan  int     // where the search for the current line's '\n' resumes
	end   int     // end of the pending payload and its CRLF, 0 if none
	chunk bool    // the pending payload is a streamed-string chunk, not a whole element
	typ   byte    // type byte of the reply proper, once seen
	stack []level // the aggregates still open, outermost first; reused
}

// level is one open aggregate.
type level struct {
	kind byte  // its type byte; TypeStreamedPart for a streamed string
	left int64 // elements still to come, or -1 when it ends with a marker
}

func (s *replyState) reset() {
	s.pos, s.scan, s.end, s.chunk, s.typ = 0, 0, 0, false, 0
	s.stack = s.stack[:0]
}

// ReadReply reads one complete reply and returns its raw bytes, valid until
// the next Read call, and typ, the type byte of the reply proper, e.g.
// TypePush for out-of-band data. A RESP3 attribute and the reply it
// annotates count as one frame, with typ the annotated reply's type; so do
// a streamed string and a streamed aggregate with all their parts.
//
// At the end of the input it returns io.EOF, or io.ErrUnexpectedEOF when the
// input ends inside a reply. Malformed input gives an error wrapping
// ErrMalformedReply; input beyond the Limits, one wrapping ErrReplyTooLarge.
func (r *Reader) ReadReply() (raw []byte, typ byte, err error) {
	for {
		if r.reply.scan == 0 {
			// Nothing of this reply is scanned yet.
			b := r.buf[r.r:min(r.w, r.r+r.maxFrame)]
			if n := r.shortReply(b); n > 0 {
				r.r += n
				return b[:n:n], b[0], nil
			}
		}
		need, err := r.parseReply()
		if err != nil {
			return nil, 0, err
		}
		if need == 0 {
			n, typ := r.reply.pos, r.reply.typ
			raw = r.buf[r.r : r.r+n : r.r+n]
			r.r += n
			r.reply.reset()
			return raw, typ, nil
		}
		if need > r.maxFrame {
			return nil, 0, r.tooLarge()
		}
		if err := r.fill(need); err != nil {
			return nil, 0, err
		}
	}
}

// parseReply goes on scanning the reply at the start of the buffered data
// from where the last call stopped. It returns need == 0 once the reply is
// complete (its length is r.reply.pos), or else the buffered length it
// needs.
func (r *Reader) parseReply() (need int, err error) {
	s := &r.reply
	// The parser sees no more than MaxFrameLen bytes, so a reply over the
	// limit fails the same way however its bytes arrive.
	b := r.buf[r.r:min(r.w, r.r+r.maxFrame)]
	for {
		if s.end > 0 {
			if len(b) < s.end {
				// The payload's length is known: ask for all of it at once.
				return s.end, nil
			}
			if b[s.end-2] != '\r' || b[s.end-1] != '\n' {
				return 0, fmt.Errorf("%w: bulk data not followed by CRLF: %q", ErrMalformedReply, b[s.end-2:s.end])
			}
			s.pos, s.scan, s.end = s.end, s.end, 0
			if !s.chunk && s.elementDone() {
				return 0, nil
			}
		}
		i := bytes.IndexByte(b[s.scan:], '\n')
		if i < 0 {
			s.scan = len(b)
			return len(b) + 1, nil
		}
		nl := s.scan + i
		if nl-s.pos < 2 || b[nl-1] != '\r' {
			return 0, fmt.Errorf("%w: line not ended by CRLF: %.100q", ErrMalformedReply, head(b[s.pos:nl+1]))
		}
		done, err := r.replyLine(b[s.pos:nl-1], nl+1)
		if err != nil || done {
			return 0, err
		}
	}
}

// replyLine handles full, a line without its CRLF that ends at next, and
// reports whether it completed the reply.
func (r *Reader) replyLine(full []byte, next int) (done bool, err error) {
	s := &r.reply
	t, line := full[0], full[1:]
	var top *level
	if len(s.stack) > 0 {
		top = &s.stack[len(s.stack)-1]
	}
	if top != nil && top.kind == TypeStreamedPart && t != TypeStreamedPart {
		return false, malformed("want a streamed string part", full)
	}
	if top == nil && t != TypeAttribute {
		s.typ = t
	}
	s.pos, s.scan = next, next

	switch t {
	case TypeSimpleString, TypeError:
		return s.elementDone(), nil
	case TypeInteger:
		if _, ok := ParseInt(line); !ok {
			return false, malformed("bad integer", full)
		}
		return s.elementDone(), nil
	case TypeNull:
		if len(line) != 0 {
			return false, malformed("bad null", full)
		}
		return s.elementDone(), nil
	case TypeBoolean:
		if len(line) != 1 || line[0] != 't' && line[0] != 'f' {
			return false, malformed("bad boolean", full)
		}
		return s.elementDone(), nil
	case TypeDouble, TypeBigNumber:
		// Their values pass through untouched, so only emptiness is worth
		// refusing here.
		if len(line) == 0 {
			return false, malformed("empty number", full)
		}
		return s.elementDone(), nil

	case TypeBulkString, TypeBulkError, TypeVerbatim, TypeStreamedPart:
		if t == TypeBulkString && len(line) == 1 && line[0] == '?' {
			return false, r.push(TypeStreamedPart, -1)
		}
		if t == TypeStreamedPart && (top == nil || top.kind != TypeStreamedPart) {
			return false, malformed("streamed string part outside a streamed string", full)
		}
		n, ok := ParseInt(line)
		if t == TypeBulkString && n == -1 {
			return s.elementDone(), nil
		}
		if !ok || n < 0 {
			return false, malformed("bad length", full)
		}
		if t == TypeStreamedPart && n == 0 {
			s.stack = s.stack[:len(s.stack)-1]
			return s.elementDone(), nil
		}
		if n > r.lim.MaxBulkLen {
			return false, fmt.Errorf("%w: bulk of %d bytes, over %d", ErrReplyTooLarge, n, r.lim.MaxBulkLen)
		}
		if n > int64(r.maxFrame-next-2) {
			return false, r.tooLarge()
		}
		s.end = next + int(n) + 2
		s.chunk = t == TypeStreamedPart
		return false, nil

	case TypeArray, TypeMap, TypeSet, TypePush, TypeAttribute:
		if t != TypeAttribute && len(line) == 1 && line[0] == '?' {
			return false, r.push(t, -1)
		}
		n, ok := ParseInt(line)
		if t == TypeArray && n == -1 {
			return s.elementDone(), nil
		}
		if !ok || n < 0 {
			return false, malformed("bad count", full)
		}
		if t == TypeMap || t == TypeAttribute {
			// Every element takes at least 3 bytes ("_\r\n"): refuse now a
			// count that cannot fit, which also keeps 2*n from overflowing.
			if n > int64(r.maxFrame-next)/6 {
				return false, r.tooLarge()
			}
			n *= 2
		} else if n > int64(r.maxFrame-next)/3 {
			return false, r.tooLarge()
		}
		if n == 0 {
			// An empty attribute annotates the element after it, which is
			// still to come.
			return t != TypeAttribute && s.elementDone(), nil
		}
		return false, r.push(t, n)

	case TypeEnd:
		if top == nil || top.left >= 0 || len(line) != 0 {
			return false, malformed("unexpected end marker", full)
		}
		s.stack = s.stack[:len(s.stack)-1]
		return s.elementDone(), nil
	}
	return false, malformed("unknown type", full)
}

// push opens an aggregate of n elements (-1: until an end marker).
func (r *Reader) push(kind byte, n int64) error {
	s := &r.reply
	if len(s.stack) >= r.lim.MaxDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrReplyTooLarge, r.lim.MaxDepth)
	}
	s.stack = append(s.stack, level{kind: kind, left: n})
	return nil
}

// elementDone records that an element has ended and reports whether that
// completed the reply. An aggregate whose last element this was has ended
// too, and so on outwards; an attribute that ends is not an element of its
// parent, since it annotates the element that follows it.
func (s *replyState) elementDone() bool {
	for len(s.stack) > 0 {
		top := &s.stack[len(s.stack)-1]
		if top.left < 0 {
			return false
		}
		top.left--
		if top.left > 0 {
			return false
		}
		s.stack = s.stack[:len(s.stack)-1]
		if top.kind == TypeAttribute {
			return false
		}
	}
	return true
}

func malformed(what string, line []byte) error {
	return fmt.Errorf("%w: %s: %.100q", ErrMalformedReply, what, head(line))
}

func (r *Reader) tooLarge() error {
	return fmt.Errorf("%w: over %d bytes", ErrReplyTooLarge, r.maxFrame)
}

// head caps bad input echoed in an error: %.100q would cap the output too,
// but only after converting all of a possibly huge slice to a string.
func head(b []byte) []byte { return b[:min(len(b), 100)] }
