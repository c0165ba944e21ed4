package proxy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// The differential test reads replies with a parser of its own, not the
// resp package: the test must not trust the code it checks.

// diffFrame is one reply, RESP2 or RESP3, as a tree.
type diffFrame struct {
	kind byte
	// line is what follows the type byte on a simple frame's line, a bulk
	// frame's payload, or an aggregate's count.
	line  string
	elems []*diffFrame // an aggregate's elements; a map's keys and values alternate
	attr  *diffFrame   // a RESP3 attribute sent before the frame
}

// maxDiffDepth bounds nesting: a reply deeper than this is garbage.
const maxDiffDepth = 64

// readDiffFrame reads one reply and returns its bytes as they came and
// its tree.
func readDiffFrame(br *bufio.Reader) ([]byte, *diffFrame, error) {
	rr := replyReader{br: br}
	f, err := rr.frame(0)
	return rr.raw, f, err
}

type replyReader struct {
	br  *bufio.Reader
	raw []byte
}

func (r *replyReader) line() (string, error) {
	s, err := r.br.ReadString('\n')
	r.raw = append(r.raw, s...)
	if err != nil {
		return "", err
	}
	if len(s) < 3 || s[len(s)-2] != '\r' {
		return "", fmt.Errorf("malformed reply line %q", s)
	}
	return s[:len(s)-2], nil
}

func (r *replyReader) frame(depth int) (*diffFrame, error) {
	if depth > maxDiffDepth {
		return nil, fmt.Errorf("reply nested deeper than %d", maxDiffDepth)
	}
	l, err := r.line()
	if err != nil {
		return nil, err
	}
	f := &diffFrame{kind: l[0], line: l[1:]}
	switch f.kind {
	case '+', '-', ':', '_', ',', '#', '(':
		return f, nil
	case '$', '!', '=':
		n, err := strconv.Atoi(f.line)
		if err != nil {
			return nil, fmt.Errorf("bad bulk length in %q", l)
		}
		if n < 0 {
			return f, nil // a RESP2 null
		}
		b := make([]byte, n+2)
		_, err = io.ReadFull(r.br, b)
		r.raw = append(r.raw, b...)
		if err != nil {
			return nil, err
		}
		if b[n] != '\r' || b[n+1] != '\n' {
			return nil, fmt.Errorf("bulk of %d bytes not followed by CRLF", n)
		}
		f.line = string(b[:n])
		return f, nil
	case '*', '~', '>', '%', '|':
		n, err := strconv.Atoi(f.line)
		if err != nil {
			return nil, fmt.Errorf("bad aggregate length in %q", l)
		}
		if f.kind == '%' || f.kind == '|' {
			n *= 2
		}
		for i := 0; i < n; i++ {
			e, err := r.frame(depth + 1)
			if err != nil {
				return nil, err
			}
			f.elems = append(f.elems, e)
		}
		if f.kind == '|' {
			next, err := r.frame(depth + 1)
			if err != nil {
				return nil, err
			}
			next.attr = f
			return next, nil
		}
		return f, nil
	}
	return nil, fmt.Errorf("unknown reply type in %q", l)
}

// encode writes f back in RESP: the canonical form normalised frames are
// compared in.
func (f *diffFrame) encode(b *bytes.Buffer) {
	if f.attr != nil {
		f.attr.encode(b)
	}
	b.WriteByte(f.kind)
	switch f.kind {
	case '$', '!', '=':
		if f.line == "-1" && f.kind == '$' {
			b.WriteString("-1\r\n")
			return
		}
		fmt.Fprintf(b, "%d\r\n%s\r\n", len(f.line), f.line)
	case '*', '~', '>', '%', '|':
		n := len(f.elems)
		if f.kind == '%' || f.kind == '|' {
			n /= 2
		}
		if f.line == "-1" {
			n = -1
		}
		fmt.Fprintf(b, "%d\r\n", n)
		for _, e := range f.elems {
			e.encode(b)
		}
	default:
		b.WriteString(f.line + "\r\n")
	}
}

func (f *diffFrame) bytes() []byte {
	var b bytes.Buffer
	f.encode(&b)
	return b.Bytes()
}

// isAggregate reports whether f holds elements.
func (f *diffFrame) isAggregate() bool {
	switch f.kind {
	case '*', '~', '%':
		return f.line != "-1"
	}
	return false
}

// normalizer rewrites a reply so that what may legitimately differ
// between two Redis processes compares equal. nil compares bytes as they
// came.
type normalizer func(*diffFrame)

// positive: TTL and PTTL may differ by the time between the two
// servers' commands, so any positive count compares equal.
func positive(f *diffFrame) {
	if n, err := strconv.ParseInt(f.line, 10, 64); f.kind == ':' && err == nil && n > 0 {
		f.line = "(positive)"
	}
}

// unordered: a set's or hash's members come in the order of the server's
// hash table, which is seeded at random in each process.
func unordered(f *diffFrame) {
	if f.isAggregate() && f.kind != '%' {
		slices.SortFunc(f.elems, compareFrames)
	}
}

// unorderedPairs is unordered for HGETALL: field-value pairs, as a map in
// RESP3 or a flat array in RESP2.
func unorderedPairs(f *diffFrame) {
	if !f.isAggregate() || len(f.elems)%2 != 0 {
		return
	}
	type pair struct{ k, v *diffFrame }
	ps := make([]pair, 0, len(f.elems)/2)
	for i := 0; i < len(f.elems); i += 2 {
		ps = append(ps, pair{f.elems[i], f.elems[i+1]})
	}
	slices.SortFunc(ps, func(a, b pair) int { return compareFrames(a.k, b.k) })
	for i, p := range ps {
		f.elems[2*i], f.elems[2*i+1] = p.k, p.v
	}
}

func compareFrames(a, b *diffFrame) int { return bytes.Compare(a.bytes(), b.bytes()) }

// helloID masks the id field of HELLO's reply: each server numbers its
// own connections (and see the documented difference helloIDDoc).
func helloID(f *diffFrame) {
	if !f.isAggregate() {
		return
	}
	for i := 0; i+1 < len(f.elems); i += 2 {
		if f.elems[i].line == "id" {
			f.elems[i+1].line = "(id)"
		}
	}
}

// execOf normalises EXEC's array of replies with the normalisers of the
// commands it ran, when it ran all of them.
func execOf(queued []normalizer) normalizer {
	return func(f *diffFrame) {
		if !f.isAggregate() || len(f.elems) != len(queued) {
			return
		}
		for i, n := range queued {
			if n != nil {
				n(f.elems[i])
			}
		}
	}
}
