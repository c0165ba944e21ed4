package resp

import (
	"bytes"
	"runtime"
	"strconv"
	"testing"
)

// TestManyArgumentsStayWithinTheLimit: a request of one-byte arguments
// is either refused at its count or read with memory of the order of
// MaxFrameLen, not the 6 to 7 times its wire size that the reader's index
// of spans and Args would take (an audit's 20 MB DEL of 3M keys peaked at
// 400 MB in the proxy).
func TestManyArgumentsStayWithinTheLimit(t *testing.T) {
	const limit = 4 << 20
	perArg := int64(len("$1\r\nz\r\n"))
	largest := func(count int64) bool { // fits the byte limit and the index rule
		head := int64(len("*" + strconv.FormatInt(count, 10) + "\r\n"))
		return head+count*perArg <= limit && count*6+(count-keepArgs)*argMemory <= limit-head
	}
	byBytes := (limit - 16) / perArg // what the byte limit alone lets through
	n := byBytes
	for !largest(n) {
		n--
	}
	for _, count := range []int64{byBytes, n} {
		var req bytes.Buffer
		req.WriteString("*" + strconv.FormatInt(count, 10) + "\r\n")
		for range count {
			req.WriteString("$1\r\nz\r\n")
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := NewReader(bytes.NewReader(req.Bytes()), 0, Limits{MaxFrameLen: limit})
		var c Command
		err := r.ReadCommand(&c)
		runtime.ReadMemStats(&after)
		allocated := after.TotalAlloc - before.TotalAlloc
		switch {
		case err != nil && count == n:
			t.Fatalf("%d arguments, within the limit with their index: %v", count, err)
		case err == nil && int64(len(c.Args)) != count:
			t.Fatalf("%d arguments read, want %d", len(c.Args), count)
		case err == nil && allocated > 4*limit:
			t.Fatalf("%d arguments of %d bytes: %d MiB allocated, over 4 times the %d MiB limit",
				count, count*perArg, allocated>>20, limit>>20)
		}
		t.Logf("%d arguments: err %v, %.1f MiB allocated", count, err, float64(allocated)/(1<<20))
	}
}
