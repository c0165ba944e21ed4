package resp

import (
	"bytes"
	"fmt"
	"strconv"
)

// This file is the generic decoder for the proxy's rare paths: replies it
// must understand rather than forward, such as COMMAND, INFO or ROLE. It
// builds a tree and allocates freely; the hot path never calls it.

// Value is one decoded RESP2 or RESP3 reply.
type Value struct {
	// Type is the type byte of the reply, e.g. TypeArray or TypeMap. A
	// streamed string is a TypeBulkString, a streamed aggregate has the
	// type of the aggregate.
	Type byte
	// Null is true for the RESP3 null (Type TypeNull) and for RESP2's null
	// bulk string ($-1, Type TypeBulkString) and null array (*-1, Type
	// TypeArray).
	Null bool
	// Str is the payload of a simple string, error, bulk string, bulk
	// error or verbatim string (without its format prefix), and the text
	// of a double or big number.
	Str []byte
	// Int is the value of an integer; 1 or 0 for a boolean.
	Int int64
	// Float is the value of a double.
	Float float64
	// Format is the 3-byte format of a verbatim string, e.g. "txt".
	Format string
	// Elems holds the elements of an array, set or push; of a map, its
	// keys and values alternately (key, value, key, value, ...).
	Elems []Value
	// Attrs holds the keys and values, alternately, of a RESP3 attribute
	// that annotated this reply.
	Attrs []Value
}

// IsError reports whether v is an error reply, simple or bulk.
func (v Value) IsError() bool { return v.Type == TypeError || v.Type == TypeBulkError }

// Text returns the payload of a string-like value as a string (Str), and
// the decimal form of an integer.
func (v Value) Text() string {
	if v.Type == TypeInteger {
		return strconv.FormatInt(v.Int, 10)
	}
	return string(v.Str)
}

// ParseValue decodes raw, which must hold exactly one complete reply, as a
// tree. The reply is framed and checked by a Reader with the default Limits
// first, so ParseValue accepts what ReadReply accepts (but a double must
// also parse as a float64, and a verbatim string must have its "xxx:"
// prefix). The result does not share memory with raw.
func ParseValue(raw []byte) (Value, error) {
	rd := NewReader(bytes.NewReader(raw), len(raw)+1, Limits{})
	frame, _, err := rd.ReadReply()
	if err != nil {
		return Value{}, fmt.Errorf("resp: parse value: %w", err)
	}
	if rd.Buffered() > 0 {
		return Value{}, fmt.Errorf("%w: %d bytes after the reply", ErrMalformedReply, rd.Buffered())
	}
	// frame lives in the Reader's own buffer, a copy of raw that nothing
	// else uses, so the Value may keep slices of it.
	d := decoder{b: frame}
	v, err := d.value()
	if err != nil {
		return Value{}, err
	}
	if d.pos != len(frame) {
		// ReadReply framed exactly this reply; a mismatch is a bug here.
		return Value{}, fmt.Errorf("%w: decoded %d of %d bytes", ErrMalformedReply, d.pos, len(frame))
	}
	return v, nil
}

// decoder walks a reply that ReadReply has already framed. It still checks
// every bound, so that a disagreement between the two is an error, not a
// panic.
type decoder struct {
	b   []byte
	pos int
}

// line returns the next line's type byte and its text without CRLF.
func (d *decoder) line() (byte, []byte, error) {
	i := bytes.Index(d.b[d.pos:], []byte("\r\n"))
	if i < 1 {
		return 0, nil, fmt.Errorf("%w: truncated line at offset %d", ErrMalformedReply, d.pos)
	}
	l := d.b[d.pos : d.pos+i]
	d.pos += i + 2
	return l[0], l[1:], nil
}

// payload returns the n bytes that follow and skips their CRLF.
func (d *decoder) payload(n int64) ([]byte, error) {
	if n < 0 || n > int64(len(d.b)-d.pos-2) {
		return nil, fmt.Errorf("%w: payload of %d bytes past the end", ErrMalformedReply, n)
	}
	p := d.b[d.pos : d.pos+int(n) : d.pos+int(n)]
	d.pos += int(n) + 2
	return p, nil
}

func (d *decoder) value() (Value, error) {
	t, line, err := d.line()
	if err != nil {
		return Value{}, err
	}
	v := Value{Type: t}
	switch t {
	case TypeSimpleString, TypeError, TypeBigNumber:
		v.Str = line
	case TypeInteger:
		n, ok := ParseInt(line)
		if !ok {
			return Value{}, malformed("bad integer", line)
		}
		v.Int = n
	case TypeNull:
		v.Null = true
	case TypeBoolean:
		if len(line) == 1 && line[0] == 't' {
			v.Int = 1
		}
	case TypeDouble:
		f, err := strconv.ParseFloat(string(line), 64)
		if err != nil {
			return Value{}, malformed("bad double", line)
		}
		v.Str, v.Float = line, f
	case TypeBulkString, TypeBulkError, TypeVerbatim:
		if t == TypeBulkString && string(line) == "?" {
			return d.streamedString()
		}
		n, ok := ParseInt(line)
		if !ok {
			return Value{}, malformed("bad length", line)
		}
		if t == TypeBulkString && n == -1 {
			v.Null = true
			break
		}
		if v.Str, err = d.payload(n); err != nil {
			return Value{}, err
		}
		if t == TypeVerbatim {
			if len(v.Str) < 4 || v.Str[3] != ':' {
				return Value{}, malformed("verbatim string without format", v.Str)
			}
			v.Format, v.Str = string(v.Str[:3]), v.Str[4:]
		}
	case TypeArray, TypeSet, TypePush, TypeMap:
		if string(line) == "?" {
			return d.streamedAggregate(v)
		}
		n, ok := ParseInt(line)
		if !ok {
			return Value{}, malformed("bad count", line)
		}
		if t == TypeArray && n == -1 {
			v.Null = true
			break
		}
		if t == TypeMap {
			n *= 2
		}
		if v.Elems, err = d.values(n); err != nil {
			return Value{}, err
		}
	case TypeAttribute:
		n, ok := ParseInt(line)
		if !ok {
			return Value{}, malformed("bad count", line)
		}
		attrs, err := d.values(2 * n)
		if err != nil {
			return Value{}, err
		}
		if v, err = d.value(); err != nil {
			return Value{}, err
		}
		// An attribute on a reply that had one already (|1 ... |1 ... x)
		// annotates the same reply: keep both, outermost first.
		v.Attrs = append(attrs, v.Attrs...)
		return v, nil
	default:
		return Value{}, malformed("unexpected type", append([]byte{t}, line...))
	}
	return v, nil
}

// values decodes the next n values.
func (d *decoder) values(n int64) ([]Value, error) {
	// ReadReply bounded n by the frame's length; check again rather than
	// trust it with an allocation.
	if n < 0 || n > int64(len(d.b)-d.pos)/3 {
		return nil, fmt.Errorf("%w: %d elements cannot fit in the reply", ErrMalformedReply, n)
	}
	out := make([]Value, n)
	for i := range out {
		var err error
		if out[i], err = d.value(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// streamedString joins the parts of a streamed string ($?) into one.
func (d *decoder) streamedString() (Value, error) {
	v := Value{Type: TypeBulkString, Str: []byte{}}
	for {
		t, line, err := d.line()
		if err != nil {
			return Value{}, err
		}
		n, ok := ParseInt(line)
		if t != TypeStreamedPart || !ok {
			return Value{}, malformed("want a streamed string part", line)
		}
		if n == 0 {
			return v, nil
		}
		p, err := d.payload(n)
		if err != nil {
			return Value{}, err
		}
		v.Str = append(v.Str, p...)
	}
}

// streamedAggregate reads elements of v up to the end marker.
func (d *decoder) streamedAggregate(v Value) (Value, error) {
	v.Elems = []Value{}
	for {
		if d.pos < len(d.b) && d.b[d.pos] == TypeEnd {
			if _, _, err := d.line(); err != nil {
				return Value{}, err
			}
			return v, nil
		}
		e, err := d.value()
		if err != nil {
			return Value{}, err
		}
		v.Elems = append(v.Elems, e)
	}
}

// AppendValue appends v encoded as RESP. Streamed strings and aggregates
// are written whole, with their lengths; everything else comes out as
// ParseValue read it, so ParseValue and AppendValue round-trip a reply's
// bytes. A CR or LF in a line-typed value (simple string, error, double,
// big number) becomes a space, as in AppendSimpleString; a map's or an
// attribute's odd last element is dropped.
func AppendValue(dst []byte, v Value) []byte {
	if len(v.Attrs) > 0 {
		dst = appendHeader(dst, TypeAttribute, int64(len(v.Attrs)/2))
		dst = appendValues(dst, v.Attrs[:len(v.Attrs)/2*2])
	}
	if v.Null {
		if v.Type == TypeBulkString || v.Type == TypeArray {
			return appendHeader(dst, v.Type, -1)
		}
		return append(dst, TypeNull, '\r', '\n')
	}
	switch v.Type {
	case TypeSimpleString, TypeError, TypeBigNumber, TypeDouble:
		return appendLine(append(dst, v.Type), string(v.Str))
	case TypeInteger:
		return appendHeader(dst, TypeInteger, v.Int)
	case TypeBoolean:
		if v.Int != 0 {
			return append(dst, TypeBoolean, 't', '\r', '\n')
		}
		return append(dst, TypeBoolean, 'f', '\r', '\n')
	case TypeBulkString, TypeBulkError, TypeVerbatim:
		n := len(v.Str)
		if v.Type == TypeVerbatim {
			n += 4
		}
		dst = appendHeader(dst, v.Type, int64(n))
		if v.Type == TypeVerbatim {
			dst = append(append(dst, (v.Format + "   ")[:3]...), ':')
		}
		dst = append(dst, v.Str...)
		return append(dst, '\r', '\n')
	case TypeArray, TypeSet, TypePush:
		dst = appendHeader(dst, v.Type, int64(len(v.Elems)))
		return appendValues(dst, v.Elems)
	case TypeMap:
		dst = appendHeader(dst, v.Type, int64(len(v.Elems)/2))
		return appendValues(dst, v.Elems[:len(v.Elems)/2*2])
	}
	// A Value built by hand with a type ParseValue never returns (or a
	// RESP3 null): write the null rather than bytes no reader could frame.
	return append(dst, TypeNull, '\r', '\n')
}

func appendValues(dst []byte, vs []Value) []byte {
	for _, v := range vs {
		dst = AppendValue(dst, v)
	}
	return dst
}
