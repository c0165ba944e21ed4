package tls

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// DefaultReloadInterval is how often Run checks the files when
// ReloadInterval is zero.
const DefaultReloadInterval = 10 * time.Second

// reloader holds the current generation T built from a set of files and
// replaces it when their content changes. Server and Client each own one.
//
// A generation is built from one read of each file and is never modified
// after it is published, so a handshake that loaded it sees a consistent
// certificate and CA pool without holding a lock.
type reloader[T any] struct {
	files    []file
	interval time.Duration
	log      *zap.Logger
	// load builds a generation from the files' content, in files order.
	// It must not read the disk, so the content checked is the content used.
	load func([][]byte) (*T, error)
	// loaded logs a newly published generation (subject, serial, expiry).
	loaded func(*T)

	cur atomic.Pointer[T] // never nil after newReloader succeeds

	mu   sync.Mutex // serialises reads and publishes; guards seen
	seen [32]byte   // digest of the content last tried, loaded or not

	checks atomic.Int64 // checks made by run, so tests can wait for some without sleeping
}

// newReloader loads the first generation; an error here fails start-up.
func newReloader[T any](files []file, interval time.Duration, log *zap.Logger,
	load func([][]byte) (*T, error), loaded func(*T)) (*reloader[T], error) {
	r := &reloader[T]{files: files, interval: interval, log: log, load: load, loaded: loaded}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *reloader[T]) current() *T { return r.cur.Load() }

// reload reads and loads the files unconditionally.
func (r *reloader[T]) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	content, sum, err := r.read()
	r.seen = sum
	if err != nil {
		return err
	}
	return r.publish(content)
}

// check reloads if the content differs from what was last tried. It
// compares against the last attempt, not the last success, so a bad file
// is reported once rather than every interval; a rotation caught halfway
// (new certificate, old key) is retried because finishing it changes the
// content again.
func (r *reloader[T]) check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	content, sum, err := r.read()
	if sum == r.seen {
		return nil
	}
	r.seen = sum
	if err != nil {
		return err
	}
	return r.publish(content)
}

func (r *reloader[T]) publish(content [][]byte) error {
	g, err := r.load(content)
	if err != nil {
		return err
	}
	r.cur.Store(g)
	r.loaded(g)
	return nil
}

// read returns every file's content and a digest of it. A file that
// cannot be read contributes its error text to the digest, so the same
// failure on the next check is not "a change".
func (r *reloader[T]) read() ([][]byte, [32]byte, error) {
	h := sha256.New()
	content := make([][]byte, len(r.files))
	var first error
	for i, f := range r.files {
		b, err := readFile(f)
		part, mark := b, byte('c')
		if err != nil {
			part, mark = []byte(err.Error()), 'e'
			if first == nil {
				first = err
			}
		}
		content[i] = b
		// Mark and length-prefix each part so that moving bytes from one
		// file to the next, or an error text equal to a file, still
		// changes the digest.
		h.Write(binary.AppendUvarint([]byte{mark}, uint64(len(part))))
		h.Write(part)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return content, sum, first
}

// run checks the files every interval until ctx ends and returns
// ctx.Err(). It runs on the caller's goroutine and starts none. Successes
// are logged by loaded; failures here, once per distinct content.
func (r *reloader[T]) run(ctx context.Context, what string) error {
	if len(r.files) == 0 {
		<-ctx.Done() // nothing to watch (a Client using the system roots)
		return ctx.Err()
	}
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		err := r.check()
		r.checks.Add(1)
		if err != nil {
			r.log.Error("tls: reload failed; keeping the previous "+what, zap.Error(err))
		}
	}
}
