package proxy_test

import (
	"bufio"
	"net"
	"testing"

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
