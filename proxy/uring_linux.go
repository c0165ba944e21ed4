package proxy

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// ring reads and writes many sockets in one system call through
// io_uring. Without it the event loop reads each client's commands with
// a read(2) and writes each reply with a write(2); on a virtual machine,
// where a system call costs more than the TCP work it does, those calls
// are most of the proxy's CPU (bench/README.md, History, sessions 17 and
// 21). A round gives ring a send per reply and a receive per readable
// client and makes one io_uring_enter(2) for all of them.
//
// Every call is made with MSG_DONTWAIT: a full or an empty socket
// completes at once with EAGAIN, as a non-blocking write(2) or read(2)
// does, rather than waiting in the kernel, so each ends within the
// io_uring_enter that submits it and the caller gets the answers it
// would from those calls. newRing checks that the kernel does so before
// anyone uses the ring (a kernel that waited would hold the loop on a
// slow client), and refuses the ring otherwise; the loop then makes a
// call per client as before.
//
// A ring belongs to one goroutine (the loop's) and is not safe for
// concurrent use.
type ring struct {
	fd      int
	rings   []byte // the submission and completion rings, one mapping
	sqes    []byte
	entries uint32

	sqTail, sqMask *uint32
	sqArray        unsafe.Pointer
	cqHead, cqTail *uint32
	cqMask         *uint32
	cqes           unsafe.Pointer

	tail   uint32  // the submission ring's tail, as add leaves it
	queued uint32  // sends added since the last submit
	res    []int32 // each call's result, by the order add queued them
}

// io_uring's ABI (include/uapi/linux/io_uring.h). The system call
// numbers are those of every architecture's generic table (mips and alpha
// differ; there io_uring_setup fails and the loop makes a call per
// client).
const (
	sysIOUringSetup = 425
	sysIOUringEnter = 426

	uringOffSQEs      = 0x10000000
	uringEnterGetEvts = 1
	uringFeatSingleMM = 1
	uringOpSend       = 26
	uringOpRecv       = 27
	uringSQESize      = 64
	uringCQESize      = 16
)

// uringParams is struct io_uring_params: the counts and flags, then the
// submission ring's offsets (head, tail, ring_mask, ring_entries, flags,
// dropped, array, resv1, user_addr as two words) and the completion
// ring's (head, tail, ring_mask, ring_entries, overflow, cqes, flags,
// resv1, user_addr).
type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff, cqOff                                                           [10]uint32
}

// ringSize is the most sends and receives one call submits; a longer
// batch takes more calls.
const ringSize = 256

// ringHook, when set, runs before each submission the event loop makes
// through its ring, with the number of calls in it; false fails the
// submission, with nothing made, as the kernel might (tests).
var ringHook func(calls int) bool

var errRingHook = errors.New("io_uring: failed by a test")

var errRingUnfit = errors.New("io_uring: a send or receive on a non-blocking socket did not complete at once")

// newRing sets up a ring and checks, on a socket pair, that sends
// complete as write(2) would: the bytes, then EAGAIN on a full socket. An
// error says why the loop will write without it (a seccomp profile that
// refuses io_uring, an old kernel, io_uring_disabled).
func newRing() (*ring, error) {
	var p uringParams
	fd, _, e := syscall.Syscall(sysIOUringSetup, ringSize, uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", e)
	}
	r := &ring{fd: int(fd), entries: p.sqEntries, res: make([]int32, p.sqEntries)}
	if err := r.mapRings(&p); err != nil {
		r.close()
		return nil, err
	}
	if err := r.probe(); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *ring) mapRings(p *uringParams) error {
	if p.features&uringFeatSingleMM == 0 {
		return errors.New("io_uring: the kernel is older than 5.4 (no single mapping)")
	}
	size := max(p.sqOff[6]+p.sqEntries*4, p.cqOff[5]+p.cqEntries*uringCQESize)
	m, err := syscall.Mmap(r.fd, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("io_uring: mmap: %w", err)
	}
	r.rings = m
	sqes, err := syscall.Mmap(r.fd, uringOffSQEs, int(p.sqEntries*uringSQESize), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("io_uring: mmap: %w", err)
	}
	r.sqes = sqes
	b := unsafe.Pointer(&m[0])
	r.sqTail = (*uint32)(unsafe.Add(b, p.sqOff[1]))
	r.sqMask = (*uint32)(unsafe.Add(b, p.sqOff[2]))
	r.sqArray = unsafe.Add(b, p.sqOff[6])
	r.cqHead = (*uint32)(unsafe.Add(b, p.cqOff[0]))
	r.cqTail = (*uint32)(unsafe.Add(b, p.cqOff[1]))
	r.cqMask = (*uint32)(unsafe.Add(b, p.cqOff[2]))
	r.cqes = unsafe.Add(b, p.cqOff[5])
	r.tail = atomic.LoadUint32(r.sqTail)
	return nil
}

// probe checks that a send or a receive completes within the call that
// submits it, without asking that call to wait: a receive from an empty
// socket with EAGAIN, sends until the socket is full with the bytes and
// then EAGAIN, as the non-blocking calls would.
func (r *ring) probe() (err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("io_uring probe: socketpair: %w", err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	// Over 64 KiB, so on the heap, never on a goroutine's stack: a call
	// the probe finds unfit may still be pending in the kernel, and then
	// chunk is quarantined, as ringIO does with a failed batch's buffers.
	chunk := make([]byte, 128<<10)
	defer func() {
		if err == errRingUnfit {
			quarantine(chunk)
		}
	}()
	res, err := r.probeOne(uringOpRecv, fds[1], chunk)
	if err != nil {
		return err
	}
	switch {
	case res >= 0:
		return fmt.Errorf("io_uring probe: a receive from an empty socket gave %d bytes, not EAGAIN", res)
	case res != -int32(syscall.EAGAIN):
		// EINVAL: a kernel older than 5.6, without IORING_OP_RECV.
		return fmt.Errorf("io_uring probe: receive: %w", syscall.Errno(-res))
	}
	sent := 0
	for range 256 {
		switch res, err := r.probeOne(uringOpSend, fds[0], chunk); {
		case err != nil:
			return err
		case res == -int32(syscall.EAGAIN):
			if sent == 0 {
				return errors.New("io_uring probe: the first send found the socket full")
			}
			return nil
		case res < 0:
			return fmt.Errorf("io_uring probe: send: %w", syscall.Errno(-res))
		default:
			sent += int(res)
		}
	}
	return errors.New("io_uring probe: the socket never filled")
}

// probeOne submits one operation without waiting and returns its result,
// or errRingUnfit if it has none yet.
func (r *ring) probeOne(op uint8, fd int, p []byte) (int32, error) {
	r.add(op, fd, p)
	r.queued = 0
	for {
		_, _, e := syscall.RawSyscall6(sysIOUringEnter, uintptr(r.fd), 1, 0, 0, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, fmt.Errorf("io_uring_enter: %w", e)
		}
		break
	}
	if r.reap(1) != 1 {
		return 0, errRingUnfit
	}
	return r.res[0], nil
}

// full reports whether add must wait for a submit.
func (r *ring) full() bool { return r.queued == r.entries }

// add queues a send of p to fd (op uringOpSend) or a receive into it
// (uringOpRecv), as the next result in res. p must stay as it is until
// submit returns.
func (r *ring) add(op uint8, fd int, p []byte) {
	i := r.tail & *r.sqMask
	sqe := (*[uringSQESize]byte)(r.sqes[i*uringSQESize:])
	*sqe = [uringSQESize]byte{}
	sqe[0] = op
	*(*int32)(unsafe.Pointer(&sqe[4])) = int32(fd)
	if len(p) > 0 {
		*(*uint64)(unsafe.Pointer(&sqe[16])) = uint64(uintptr(unsafe.Pointer(&p[0])))
	}
	*(*uint32)(unsafe.Pointer(&sqe[24])) = uint32(len(p))
	flags := uint32(syscall.MSG_DONTWAIT)
	if op == uringOpSend {
		flags |= syscall.MSG_NOSIGNAL
	}
	*(*uint32)(unsafe.Pointer(&sqe[28])) = flags
	*(*uint64)(unsafe.Pointer(&sqe[32])) = uint64(r.queued)
	*(*uint32)(unsafe.Add(r.sqArray, 4*uintptr(i))) = i
	r.tail++
	r.queued++
	atomic.StoreUint32(r.sqTail, r.tail)
}

// submit makes the calls queued since the last one, in one system call
// when all goes well, and fills res with each one's result: the bytes
// sent or received, or a negated errno. An error means the ring cannot be
// trusted further: some calls may have been made and others not, and res
// says nothing about any of them.
//
// The call does not wait: every send and receive completes within it
// (probe). Should one not have, submit does not wait for it either (a
// send to a client that stopped reading would hold the loop): it returns
// errRingUnfit, and the kernel may still use the buffers of that
// submission (see quarantine).
func (r *ring) submit() error {
	n := r.queued
	r.queued = 0
	if n == 0 {
		return nil
	}
	toSubmit, got := n, uint32(0)
	for toSubmit > 0 {
		ret, _, e := syscall.RawSyscall6(sysIOUringEnter, uintptr(r.fd), uintptr(toSubmit), 0, 0, 0, 0)
		switch {
		case e == syscall.EINTR:
		case e != 0:
			return fmt.Errorf("io_uring_enter: %w", e)
		case ret == 0:
			// Nothing taken and no error: asking again would spin.
			return fmt.Errorf("io_uring_enter: submitted none of %d calls", toSubmit)
		default:
			toSubmit -= min(uint32(ret), toSubmit)
		}
		got += r.reap(n)
	}
	if got < n {
		return errRingUnfit
	}
	return nil
}

// quarantined keeps the buffers of a failed submission from the garbage
// collector for the life of the process: a call the kernel had not
// completed may still read or write them, and must not meet memory the
// program has since used for something else. It happens at most once per
// ring, which is then closed.
var quarantined struct {
	sync.Mutex
	bufs [][]byte
}

func quarantine(p []byte) {
	quarantined.Lock()
	quarantined.bufs = append(quarantined.bufs, p)
	quarantined.Unlock()
}

// reap takes the completions there are into res.
func (r *ring) reap(n uint32) uint32 {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	got := uint32(0)
	for ; head != tail; head++ {
		cqe := unsafe.Add(r.cqes, uringCQESize*uintptr(head&*r.cqMask))
		if i := *(*uint64)(cqe); i < uint64(n) {
			r.res[i] = *(*int32)(unsafe.Add(cqe, 8))
			got++
		}
	}
	atomic.StoreUint32(r.cqHead, head)
	return got
}

func (r *ring) close() {
	if r.sqes != nil {
		syscall.Munmap(r.sqes)
	}
	if r.rings != nil {
		syscall.Munmap(r.rings)
	}
	syscall.Close(r.fd)
}
