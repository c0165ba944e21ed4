package resp

import "testing"

func TestAppend(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"array len", AppendArrayLen(nil, 3), "*3\r\n"},
		{"null array", AppendArrayLen(nil, -1), "*-1\r\n"},
		{"bulk", AppendBulk(nil, []byte("a\r\nb")), "$4\r\na\r\nb\r\n"},
		{"empty bulk", AppendBulk(nil, nil), "$0\r\n\r\n"},
		{"bulk string", AppendBulkString(nil, "hello"), "$5\r\nhello\r\n"},
		{"simple string", AppendSimpleString(nil, "OK"), "+OK\r\n"},
		{"simple string with newlines", AppendSimpleString(nil, "a\r\nb"), "+a  b\r\n"},
		{"error", AppendError(nil, "ERR unknown command"), "-ERR unknown command\r\n"},
		{"error with newlines", AppendError(nil, "ERR got '\r'\n"), "-ERR got ' ' \r\n"},
		{"int", AppendInt(nil, -42), ":-42\r\n"},
		{"int min", AppendInt(nil, -9223372036854775808), ":-9223372036854775808\r\n"},
		{"null RESP2", AppendNull(nil, 2), "$-1\r\n"},
		{"null RESP3", AppendNull(nil, 3), "_\r\n"},
		{"command", AppendCommand(nil, args("SET", "k", "")), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"},
		{"empty command", AppendCommand(nil, nil), "*0\r\n"},
		{"appends to dst", AppendInt([]byte("+OK\r\n"), 1), "+OK\r\n:1\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestAppendAllocs(t *testing.T) {
	dst := make([]byte, 0, 256)
	a := args("SET", "key", "value")
	allocs := testing.AllocsPerRun(100, func() {
		b := AppendCommand(dst[:0], a)
		b = AppendError(b, "ERR x")
		b = AppendInt(b, 1)
		_ = AppendNull(b, 3)
	})
	if allocs != 0 {
		t.Errorf("%v allocations appending into a large enough dst, want 0", allocs)
	}
}
