package proxy_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pnats/switchyard/proxy"
)

// TestClientKeepAlive: an accepted client's socket, under TLS too, gets
// the configured keepalive period, and a negative one turns keepalive
// off, although Go's listener turns it on for every connection it
// accepts.
func TestClientKeepAlive(t *testing.T) {
	for _, c := range []struct {
		name      string
		keepAlive time.Duration
		on        bool
		idle      int // seconds, when on
	}{
		{"period", 45 * time.Second, true, 45},
		{"off", -1, false, 0},
	} {
		for _, wrap := range []string{"plain", "TLS", "TLS over a rawSocket"} {
			server := acceptOne(t)
			var nc net.Conn = server
			switch wrap {
			case "TLS":
				nc = tls.Server(server, &tls.Config{})
			case "TLS over a rawSocket": // as a TLS listener's
				nc = tls.Server(proxy.RawSocketOf(server), &tls.Config{})
			}
			proxy.TuneClient(nc, c.keepAlive)
			on, idle := keepAliveOf(t, server)
			if on != c.on || (c.on && idle != c.idle) {
				t.Errorf("%s (%s): keepalive %v, idle %d s; want %v, %d s", c.name, wrap, on, idle, c.on, c.idle)
			}
		}
	}
}

// acceptOne returns the server side of a loopback TCP connection.
func acceptOne(t *testing.T) *net.TCPConn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server.(*net.TCPConn)
}

// keepAliveOf reads SO_KEEPALIVE and TCP_KEEPIDLE from the socket.
func keepAliveOf(t *testing.T, c *net.TCPConn) (on bool, idle int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var e1, e2 error
	var v int
	if err := rc.Control(func(fd uintptr) {
		v, e1 = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		idle, e2 = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
	}); err != nil {
		t.Fatal(err)
	}
	if e1 != nil || e2 != nil {
		t.Fatalf("getsockopt: %v, %v", e1, e2)
	}
	return v != 0, idle
}

// TestClientKeepAliveThroughServer: the proxy applies the setting to the
// clients it accepts, those the event loop serves and those it hands to
// a goroutine alike. The kernel's table of TCP
// sockets shows whether a socket's keepalive timer runs (timer kind 2),
// and when it fires.
func TestClientKeepAliveThroughServer(t *testing.T) {
	for _, c := range []struct {
		keepAlive time.Duration
		timer     bool
	}{{45 * time.Second, true}, {-1, false}} {
		rs, _, addr := setup(t, proxy.Config{KeepAlive: c.keepAlive})
		// Once the proxy has its command table, a GET is served by the
		// loop from the start.
		settle(t, dialRaw(t, addr), rs)
		for _, req := range []struct{ what, cmd string }{
			{"a GET", cmd("GET", "k")},
			{"an inline GET", "GET k\r\n"}, // an inline command leaves the loop
		} {
			cl := dialRaw(t, addr)
			cl.send(req.cmd)
			cl.expect("$-1")
			local := cl.nc.LocalAddr().(*net.TCPAddr).Port
			remote := cl.nc.RemoteAddr().(*net.TCPAddr).Port
			kind, when := tcpTimer(t, remote, local)
			if got := kind == 2; got != c.timer {
				t.Errorf("keepalive %v, after %s: the client's socket in the proxy has timer kind %d", c.keepAlive, req.what, kind)
			}
			if c.timer && (when < 40*time.Second || when > 45*time.Second) {
				t.Errorf("keepalive %v, after %s: timer fires in %v", c.keepAlive, req.what, when)
			}
		}
	}
}

// tcpTimer finds the socket local:remote (loopback ports) in
// /proc/net/tcp and returns its timer kind and when the timer fires.
func tcpTimer(t *testing.T, local, remote int) (kind int, when time.Duration) {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	want := fmt.Sprintf("0100007F:%04X 0100007F:%04X", local, remote)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[1]+" "+f[2] != want {
			continue
		}
		k, w, _ := strings.Cut(f[5], ":") // tr:tm->when, hex, jiffies
		kv, _ := strconv.ParseInt(k, 16, 64)
		wv, _ := strconv.ParseInt(w, 16, 64)
		return int(kv), time.Duration(wv) * time.Second / time.Duration(userHZ)
	}
	t.Fatalf("no socket %s in /proc/net/tcp", want)
	return 0, 0
}

// userHZ is the unit of /proc/net/tcp's timer column.
const userHZ = 100
