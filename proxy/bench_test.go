package proxy_test

import (
	"bufio"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"

	"github.com/pnats/switchyard/proxy"
)

// BenchmarkForward measures the proxy's cost per forwarded command with
// many clients in parallel against a real redis-server. Compare with
// BenchmarkDirect in the same run; allocs/op must stay at zero.
func BenchmarkForward(b *testing.B) {
	rs, _, addr := setup(b, proxy.Config{})
	b.Run("proxy", func(b *testing.B) { benchGet(b, addr) })
	b.Run("direct", func(b *testing.B) { benchGet(b, rs.Addr) })
}

// benchGet runs GET over raw connections, one per parallel worker, each
// waiting for its reply before sending the next (pipeline 1).
func benchGet(b *testing.B, addr string) {
	req := []byte("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n")
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer nc.Close()
		br := bufio.NewReader(nc)
		for pb.Next() {
			if _, err := nc.Write(req); err != nil {
				b.Error(err)
				return
			}
			if _, err := br.ReadSlice('\n'); err != nil { // "$-1\r\n"
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkIdleConnMemory reports what the runtime holds per idle client
// connection: heap in use and goroutine stacks, after a GC. The client
// side of each connection lives in the same process and is included.
// go test -run x -bench IdleConnMemory ./proxy/
func BenchmarkIdleConnMemory(b *testing.B) {
	rs := labtest.Server(b, lab.ServerOptions{})
	for _, tc := range []struct {
		name string
		buf  int
	}{{"buffer-4096", 4096}, {"buffer-1024", 1024}} {
		b.Run(tc.name, func(b *testing.B) {
			_, addr := startProxy(b, rs.Addr, proxy.Config{ClientBufferSize: tc.buf})
			const n = 2000
			baseH, baseS := heapAndStacks()
			conns := make([]net.Conn, 0, n)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for i := 0; i < n; i++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				c.Write([]byte("PING\r\n"))
				if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c)
			}
			h, st := heapAndStacks()
			b.ReportMetric(float64(h-baseH)/n/1024, "heap-KiB/conn")
			b.ReportMetric(float64(st-baseS)/n/1024, "stack-KiB/conn")
			for i := 0; i < b.N; i++ {
			}
		})
	}
}

func heapAndStacks() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse
}

// TestForwardingDoesNotAllocate: in steady state, forwarding a command
// allocates nothing, in the session, the backend connection or the codec.
// The count covers the whole process, client included, so it allows a
// little background noise, far below one allocation per command.
func TestForwardingDoesNotAllocate(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	_, _, addr := setup(t, proxy.Config{PoolSize: 1, Metrics: allocMetrics(t)})
	req := "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"
	checkAllocs(t, addr, "SET key value\r\n", req, 2)
}

// The same for a read port's reads, which go to a replica: the pick of
// the replica and the read's classification allocate nothing either.
func TestReadPortForwardingDoesNotAllocate(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	r := startReplicated(t, 1)
	_, _, readAddr := readProxyTable(t, r, proxy.Config{PoolSize: 1, Metrics: allocMetrics(t)})
	r.set(t, "key", "value")
	req := "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*2\r\n$6\r\nEXISTS\r\n$3\r\nkey\r\n"
	checkAllocs(t, readAddr, "PING\r\n", req, 2)
}

// allocMetrics has metrics, as the binary runs: a batch observer for GET,
// plain ones for SET and EXISTS, on the master and on replicas.
func allocMetrics(t *testing.T) *proxy.Metrics {
	m := &proxy.Metrics{BytesIn: &count{}, BytesOut: &count{}}
	m.CommandDuration[commandID(t, "GET")] = &batchCount{}
	m.CommandDuration[commandID(t, "SET")] = &count{}
	m.ReplicaCommandDuration[commandID(t, "GET")] = &batchCount{}
	m.ReplicaCommandDuration[commandID(t, "EXISTS")] = &count{}
	return m
}

// checkAllocs sends first (an inline command, one line of reply), then
// req (n commands, the first a GET with a bulk reply, the others one-line
// replies) over and over, and fails if the process allocated more than a
// little per forwarded command.
func checkAllocs(t *testing.T, addr, first, req string, n int) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(time.Minute)) // a reply that never comes fails the test
	br := bufio.NewReader(nc)
	raw := []byte(req)
	roundTrip := func() {
		if _, err := nc.Write(raw); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			l, err := br.ReadSlice('\n')
			if err != nil {
				t.Fatal(err)
			}
			if l[0] == '-' {
				t.Fatalf("reply %d: %q", i+1, l)
			}
			if i == 0 {
				if string(l) != "$5\r\n" {
					t.Fatalf("GET: %q", l)
				}
				br.ReadSlice('\n') // the value
			}
		}
	}
	nc.Write([]byte(first))
	br.ReadSlice('\n')
	for i := 0; i < 1000; i++ { // warm up: pools, buffers, the command table
		roundTrip()
	}
	const rounds = 5000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < rounds; i++ {
		roundTrip()
	}
	runtime.ReadMemStats(&after)
	if per := float64(after.Mallocs-before.Mallocs) / float64(n*rounds); per > 0.05 {
		t.Fatalf("%.3f allocations per forwarded command", per)
	}
}
