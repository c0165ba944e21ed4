package resp

import "math"

// Limits bounds what a Reader accepts, so that a misbehaving peer cannot make
// the proxy buffer without end. A zero (or negative) field means the default
// given; the defaults are the limits Redis 7 applies to its own clients.
type Limits struct {
	// MaxBulkLen is the longest bulk string, in bytes, in a request or a
	// reply. Default 512 MiB (Redis proto-max-bulk-len).
	MaxBulkLen int64
	// MaxMultiBulkLen is the most elements in a request's multibulk.
	// Default 2147483647 (Redis's INT_MAX check).
	MaxMultiBulkLen int64
	// MaxInlineLen is the longest inline request line, and the longest
	// multibulk or bulk count line, in bytes. Default 64 KiB (Redis
	// PROTO_INLINE_MAX_SIZE).
	MaxInlineLen int
	// MaxDepth is the deepest nesting of aggregate replies, attributes
	// included. Default 512.
	MaxDepth int
	// MaxFrameLen is the largest whole frame, request or reply, buffered at
	// once, in bytes. Default 1 GiB (Redis client-query-buffer-limit).
	MaxFrameLen int64
	// Unauthenticated applies Redis's limits for a client that has not
	// authenticated yet: at most 10 elements and 16 KiB per bulk string,
	// so an anonymous peer cannot make the reader allocate much.
	Unauthenticated bool
}

// Redis's limits before authentication (networking.c).
const (
	unauthMaxMultiBulk = 10
	unauthMaxBulk      = 16384
)

const (
	defaultMaxBulkLen      = 512 << 20
	defaultMaxMultiBulkLen = math.MaxInt32
	defaultMaxInlineLen    = 64 << 10
	defaultMaxDepth        = 512
	defaultMaxFrameLen     = 1 << 30
)

// WithDefaults returns l with every zero or negative field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxBulkLen <= 0 {
		l.MaxBulkLen = defaultMaxBulkLen
	}
	if l.MaxMultiBulkLen <= 0 {
		l.MaxMultiBulkLen = defaultMaxMultiBulkLen
	}
	if l.MaxInlineLen <= 0 {
		l.MaxInlineLen = defaultMaxInlineLen
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = defaultMaxDepth
	}
	if l.MaxFrameLen <= 0 {
		l.MaxFrameLen = defaultMaxFrameLen
	}
	// A frame must fit in an int-indexed buffer; on 32-bit platforms the
	// defaults above would not.
	if l.MaxFrameLen > math.MaxInt/2 {
		l.MaxFrameLen = math.MaxInt / 2
	}
	return l
}
