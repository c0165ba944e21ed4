package proxy

import (
	"bytes"
	"net"
	"testing"
	"unsafe"
)

// TestWatchThatReadNothingKeepsNoBuffer: a watcher that read nothing
// leaves no buffer behind for the rest of the client's life. A review
// found 512 bytes kept per client after any blocking command.
func TestWatchThatReadNothingKeepsNoBuffer(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cr := &clientReader{nc: a, fd: -1, peekLimit: 1 << 30}
	cr.watch()
	cr.stopWatch()
	if cr.peeked != nil || cr.err != nil {
		t.Fatalf("after a watch that read nothing: %d bytes of room kept, err %v", cap(cr.peeked), cr.err)
	}
}

// TestPeekedRemainderIsNotPinned: once most of a large peeked buffer has
// been read, what is left moves out of it, so a client that blocks again
// before reading the rest does not hold the whole array meanwhile. A
// review found 78 MB held for 140 KB unread.
func TestPeekedRemainderIsNotPinned(t *testing.T) {
	const size = 1 << 20
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	cr := &clientReader{fd: -1, peeked: bytes.Clone(data), peekCap: size}
	start := uintptr(unsafe.Pointer(&cr.peeked[0]))
	var got []byte
	p := make([]byte, 64<<10)
	for len(got) < size-100<<10 {
		n, err := cr.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p[:n]...)
	}
	if at := uintptr(unsafe.Pointer(&cr.peeked[0])); at >= start && at < start+size {
		t.Fatalf("%d bytes left to read still hold the %d-byte array they were read into", len(cr.peeked), size)
	}
	for len(got) < size {
		n, err := cr.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p[:n]...)
	}
	if !bytes.Equal(got, data) || cr.peeked != nil {
		t.Fatalf("read back %d bytes (equal: %v), %d left", len(got), bytes.Equal(got, data), len(cr.peeked))
	}
}
