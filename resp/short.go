package resp

import "bytes"

// The shapes nearly all traffic has get a parser of their own: a request
// whose count and length lines are short, and a simple string, integer or
// short-length bulk string reply, each wholly buffered at the start of a
// frame. A short path only ever accepts what the general parser accepts,
// with the same result. For anything else (a partial frame, a long or odd
// number, a limit in the way, a malformed byte) it declines, and the
// general parser starts on the frame from its beginning, so every error
// and every resumed partial frame stays the general parser's.

// shortLines bounds the count and length lines a short path reads: a type
// byte and up to 9 digits. The general parser looks for a line's end
// within MaxInlineLen bytes, so the short path runs only when that finds
// these lines too.
const shortLines = 10

// shortArgs is the most arguments a short request has. A request with
// more, arriving in pieces, is resumed by the general parser instead of
// being scanned again from the start at every read.
const shortArgs = 64

// shortNumber parses the number at b[i] and the CRLF after it: 1 to 9
// digits, with no leading zero except in "0". It returns the number and
// the index after the LF, or ok false.
func shortNumber(b []byte, i int) (v, next int, ok bool) {
	end := min(len(b), i+shortLines)
	for j := i; j < end; j++ {
		c := b[j]
		if c >= '0' && c <= '9' {
			if c == '0' && j == i && (j+1 >= len(b) || b[j+1] != '\r') {
				return 0, 0, false
			}
			v = v*10 + int(c-'0')
			continue
		}
		if c != '\r' || j == i || j+1 >= len(b) || b[j+1] != '\n' {
			return 0, 0, false
		}
		return v, j + 2, true
	}
	return 0, 0, false
}

// shortCommand parses the multibulk at the start of b if it is a short
// request wholly in b; ok is false otherwise.
func (r *Reader) shortCommand(b []byte, cmd *Command) (n int, ok bool) {
	if r.noShort || r.lim.Unauthenticated || r.lim.MaxInlineLen < shortLines {
		return 0, false
	}
	count, pos, ok := shortNumber(b, 1)
	if !ok || count == 0 || count > shortArgs || int64(count) > r.lim.MaxMultiBulkLen {
		return 0, false
	}
	// On failure the arguments written so far are cleared: past
	// len(cmd.args), nothing else would, and a partial frame waits for
	// the rest of its bytes after the buffer they point into is dropped.
	args := cmd.resetArgs()
	for range count {
		if pos >= len(b) || b[pos] != TypeBulkString {
			cmd.dropPartial(args)
			return 0, false
		}
		size, start, ok := shortNumber(b, pos+1)
		if !ok || int64(size) > r.lim.MaxBulkLen {
			cmd.dropPartial(args)
			return 0, false
		}
		end := start + size
		if end+2 > len(b) || b[end] != '\r' || b[end+1] != '\n' {
			cmd.dropPartial(args)
			return 0, false
		}
		args = append(args, b[start:end:end])
		pos = end + 2
	}
	cmd.args = args
	cmd.Args, cmd.Inline = args, false
	return pos, true
}

// shortReply returns the length of the reply at the start of b if it is a
// simple string, an error, an integer or a bulk string with a short length
// line, wholly in b; 0 otherwise.
func (r *Reader) shortReply(b []byte) int {
	if r.noShort || len(b) < 3 {
		return 0
	}
	switch b[0] {
	case TypeSimpleString, TypeError, TypeInteger:
		nl := bytes.IndexByte(b, '\n')
		if nl < 2 || b[nl-1] != '\r' {
			return 0
		}
		if b[0] == TypeInteger {
			if _, ok := ParseInt(b[1 : nl-1]); !ok {
				return 0
			}
		}
		return nl + 1
	case TypeBulkString:
		size, start, ok := shortNumber(b, 1)
		if !ok || int64(size) > r.lim.MaxBulkLen {
			return 0
		}
		end := start + size + 2
		if end > len(b) || b[end-2] != '\r' || b[end-1] != '\n' {
			return 0
		}
		return end
	}
	return 0
}
