package proxy_test

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/pnats/switchyard/proxy"
)

// TestOutOfDescriptors: with the process out of file descriptors, a
// command that needs a connection of its own (BLPOP) is answered with an
// error that says so. The event loop's hand-off to a goroutine needs a
// descriptor too, and without its reserve the client was closed without
// a word; the dial's failure read "master unreachable". Once descriptors
// are free again the client carries on.
func TestOutOfDescriptors(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	c := dialRaw(t, addr)
	settle(t, c, rs)

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	low := lim
	low.Cur = uint64(len(fds) + 32)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower the open files limit: %v", err)
	}
	var fillers []*os.File
	restore := func() {
		for _, f := range fillers {
			f.Close()
		}
		fillers = nil
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	defer restore()
	for {
		f, err := os.Open("/dev/null")
		if err != nil {
			break
		}
		fillers = append(fillers, f)
	}

	c.send(cmd("BLPOP", "fdlimit:list", "1"))
	line := c.line()
	restore()
	if !strings.Contains(line, "out of file descriptors") {
		t.Fatalf("BLPOP with no descriptor left: %q, want the proxy's out-of-descriptors error", line)
	}
	c.send(cmd("BLPOP", "fdlimit:list", "0.1"))
	c.expect("*-1")
}
