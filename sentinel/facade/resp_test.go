package facade

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawConn is a test client that sends commands and reads whole replies
// as the raw bytes on the wire, so tests compare exact encodings.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func encode(args ...string) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	return b
}

func (r *rawConn) send(args ...string) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.c.Write(encode(args...)); err != nil {
		r.t.Fatalf("send %v: %v", args, err)
	}
}

// read returns the next whole reply.
func (r *rawConn) read() string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	s, err := readRaw(r.br)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return s
}

// do sends a command and returns its reply.
func (r *rawConn) do(args ...string) string {
	r.t.Helper()
	r.send(args...)
	return r.read()
}

// readRaw reads one RESP2/RESP3 value and returns its bytes.
func readRaw(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	if len(line) < 3 {
		return "", fmt.Errorf("short line %q", line)
	}
	out := line
	n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
	switch line[0] {
	case '+', '-', ':', '_', '#', ',', '(':
		return out, nil
	case '$', '=', '!':
		if n < 0 {
			return out, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return "", err
		}
		return out + string(b), nil
	case '*', '~', '>':
		for i := 0; i < n; i++ {
			s, err := readRaw(br)
			if err != nil {
				return "", err
			}
			out += s
		}
		return out, nil
	case '%', '|':
		for i := 0; i < 2*n; i++ {
			s, err := readRaw(br)
			if err != nil {
				return "", err
			}
			out += s
		}
		return out, nil
	}
	return "", fmt.Errorf("unknown type %q", line)
}

// value is a decoded reply, for tests that compare shapes.
type value struct {
	kind  byte // the RESP type byte; '*' also for RESP3 maps flattened
	str   string
	elems []value
	null  bool
}

// parse decodes a raw reply. Maps keep their type byte and list keys and
// values alternately.
func parse(raw string) (value, error) {
	v, rest, err := parseOne(raw)
	if err == nil && rest != "" {
		err = fmt.Errorf("trailing bytes %q", rest)
	}
	return v, err
}

func parseOne(s string) (value, string, error) {
	i := strings.Index(s, "\r\n")
	if i < 1 {
		return value{}, "", fmt.Errorf("bad frame %q", s)
	}
	head, rest := s[:i], s[i+2:]
	v := value{kind: head[0]}
	n, _ := strconv.Atoi(head[1:])
	switch head[0] {
	case '+', '-', ':':
		v.str = head[1:]
	case '_':
		v.null = true
	case '$':
		if n < 0 {
			v.null = true
			return v, rest, nil
		}
		v.str, rest = rest[:n], rest[n+2:]
	case '*', '>', '%':
		if n < 0 {
			v.null = true
			return v, rest, nil
		}
		count := n
		if head[0] == '%' {
			count = 2 * n
		}
		for j := 0; j < count; j++ {
			e, r, err := parseOne(rest)
			if err != nil {
				return v, "", err
			}
			v.elems, rest = append(v.elems, e), r
		}
	default:
		return v, "", fmt.Errorf("unexpected type %q", head)
	}
	return v, rest, nil
}

// pairs returns a map/flat-array reply's keys in order and its values.
func (v value) pairs() ([]string, map[string]value) {
	var keys []string
	m := map[string]value{}
	for i := 0; i+1 < len(v.elems); i += 2 {
		keys = append(keys, v.elems[i].str)
		m[v.elems[i].str] = v.elems[i+1]
	}
	return keys, m
}
