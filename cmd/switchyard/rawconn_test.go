package main

import (
	"bufio"
	"net"
	"testing"
	"time"
)

type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads one line per want and fails on the first that differs.
func (c *rawConn) expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		l, err := c.br.ReadString('\n')
		if err != nil || len(l) < 2 || l[:len(l)-2] != w {
			c.t.Fatalf("read %q (%v), want %q", l, err, w)
		}
	}
}

// closed reports whether the peer closed the connection within 10 s,
// after whatever it still had to say.
func (c *rawConn) closed() bool {
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, err := c.br.ReadByte(); err != nil {
			ne, ok := err.(net.Error)
			return !ok || !ne.Timeout()
		}
	}
}
