package resp

import (
	"bytes"
	"testing"
)

// loopReader replays data forever, so a benchmark reads a steady stream of
// whole frames with no per-op setup.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

// pipeline is n copies of frame, as a client that pipelines sends them.
func pipeline(frame []byte, n int) []byte {
	return bytes.Repeat(frame, n)
}

func benchmarkReadCommand(b *testing.B, frame []byte) {
	r := NewReader(&loopReader{data: pipeline(frame, 100)}, 0, Limits{})
	var c Command
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.ReadCommand(&c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadCommand(b *testing.B) {
	b.Run("GET", func(b *testing.B) {
		benchmarkReadCommand(b, AppendCommand(nil, args("GET", "key:000000001")))
	})
	b.Run("SET", func(b *testing.B) {
		benchmarkReadCommand(b, AppendCommand(nil, args("SET", "key:000000001", string(bytes.Repeat([]byte("v"), 100)))))
	})
	b.Run("inline", func(b *testing.B) {
		benchmarkReadCommand(b, []byte("SET key:000000001 \"hello world\"\r\n"))
	})
}

// BenchmarkBufferedCommand takes whole pipelines as a proxy does: one
// ReadCommand, then BufferedCommand for everything else already read.
func BenchmarkBufferedCommand(b *testing.B) {
	frame := AppendCommand(nil, args("GET", "key:000000001"))
	r := NewReader(&loopReader{data: pipeline(frame, 100)}, 0, Limits{})
	var c Command
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		ok, err := r.BufferedCommand(&c)
		if err == nil && !ok {
			err = r.ReadCommand(&c)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadReply(b *testing.B) {
	mapReply := []byte("%3\r\n$4\r\nname\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:3\r\n")
	array := AppendArrayLen(nil, 10)
	for range 10 {
		array = AppendBulkString(array, "value-0001")
	}
	tests := []struct {
		name  string
		frame []byte
		n     int
	}{
		{"simple", []byte("+OK\r\n"), 100},
		{"bulk", AppendBulkString(nil, "value-0001"), 100},
		{"array", array, 100},
		{"map", mapReply, 100},
		{"bulk 64KiB", AppendBulk(nil, bytes.Repeat([]byte("v"), 64<<10)), 4},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			r := NewReader(&loopReader{data: pipeline(tt.frame, tt.n)}, 0, Limits{})
			b.SetBytes(int64(len(tt.frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := r.ReadReply(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
