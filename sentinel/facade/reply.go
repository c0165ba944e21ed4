package facade

import (
	"strconv"

	"github.com/tidwall/redcon"
)

// reply accumulates one batch of replies for a client in the protocol it
// negotiated with HELLO. Aggregates that RESP3 types differently (maps,
// pushes, nulls) are written here; the rest uses redcon's encoders.
type reply struct {
	b     []byte
	resp3 bool
}

// maxKeptBuffer caps the buffer kept between batches, as redcon's Writer
// does, so one large INFO does not pin memory for the connection's life.
const maxKeptBuffer = 64 << 10

func (r *reply) reset() {
	if cap(r.b) > maxKeptBuffer {
		r.b = nil
	}
	r.b = r.b[:0]
}

func (r *reply) array(n int)     { r.b = redcon.AppendArray(r.b, n) }
func (r *reply) bulk(s string)   { r.b = redcon.AppendBulkString(r.b, s) }
func (r *reply) simple(s string) { r.b = redcon.AppendString(r.b, s) }
func (r *reply) err(s string)    { r.b = redcon.AppendError(r.b, s) }
func (r *reply) int(n int64)     { r.b = redcon.AppendInt(r.b, n) }

// mapLen starts a map of n pairs: "%n" in RESP3, a flat array of 2n
// elements in RESP2, as Redis's addReplyMapLen.
func (r *reply) mapLen(n int) {
	if r.resp3 {
		r.prefix('%', n)
		return
	}
	r.array(2 * n)
}

// push starts an out-of-band message (Pub/Sub): ">n" in RESP3.
func (r *reply) push(n int) {
	if r.resp3 {
		r.prefix('>', n)
		return
	}
	r.array(n)
}

// nullBulk is a missing string: "_" in RESP3, "$-1" in RESP2.
func (r *reply) nullBulk() {
	if r.resp3 {
		r.b = append(r.b, "_\r\n"...)
		return
	}
	r.b = append(r.b, "$-1\r\n"...)
}

// nullArray is a missing array: "_" in RESP3, "*-1" in RESP2 (what
// SENTINEL get-master-addr-by-name gives for an unknown name).
func (r *reply) nullArray() {
	if r.resp3 {
		r.b = append(r.b, "_\r\n"...)
		return
	}
	r.b = append(r.b, "*-1\r\n"...)
}

// fields writes name/value pairs as a map of bulk strings, the shape of
// Sentinel's addReplySentinelRedisInstance.
func (r *reply) fields(kv []field) {
	r.mapLen(len(kv))
	for _, f := range kv {
		r.bulk(f.name)
		r.bulk(f.value)
	}
}

func (r *reply) prefix(c byte, n int) {
	r.b = append(r.b, c)
	r.b = strconv.AppendInt(r.b, int64(n), 10)
	r.b = append(r.b, '\r', '\n')
}

// field is one name/value pair of a SENTINEL master or replica entry.
type field struct{ name, value string }
