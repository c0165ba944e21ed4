package resp

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// startRedis runs a redis-server on a free loopback port for the test and
// returns its address, or skips the test when there is no redis-server.
func startRedis(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts redis-server; skipped in -short mode")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not start listening on %s: %v", addr, err)
		}
	}
}

// TestProtocolErrorsMatchRedis sends each malformed request Redis rejects to
// a real Redis and checks that it replies exactly "-ERR " + Msg.
func TestProtocolErrorsMatchRedis(t *testing.T) {
	addr := startRedis(t)
	for _, tt := range commandErrorTests {
		if !tt.redis {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte(tt.in)); err != nil {
				t.Fatal(err)
			}
			got, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				t.Fatalf("reading Redis's reply: %v", err)
			}
			if want := string(AppendError(nil, "ERR "+tt.msg)); got != want {
				t.Errorf("Redis replied %q, the Reader says %q", got, want)
			}
		})
	}
}

// TestInlineSplitMatchesRedis has Redis split each inline test line (as the
// arguments of an RPUSH) and checks that it found the same arguments.
func TestInlineSplitMatchesRedis(t *testing.T) {
	addr := startRedis(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := NewReader(c, 0, Limits{})
	for _, tt := range commandTests {
		if !tt.inline {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			req := "DEL l\r\nRPUSH l " + tt.in + "LRANGE l 0 -1\r\n"
			if _, err := c.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			var list []byte
			for range 3 {
				raw, typ, err := r.ReadReply()
				if err != nil {
					t.Fatal(err)
				}
				if typ == TypeError {
					t.Fatalf("Redis replied %q", raw)
				}
				list = raw
			}
			// An array of bulk strings is also a multibulk request.
			var got Command
			if err := NewReader(bytes.NewReader(list), 0, Limits{}).ReadCommand(&got); err != nil {
				t.Fatalf("LRANGE reply %q: %v", list, err)
			}
			if !equalArgs(got.Args, tt.args) {
				t.Errorf("Redis split %q into %q, the table says %q", strings.TrimSuffix(tt.in, "\r\n"), got.Args, tt.args)
			}
		})
	}
}
