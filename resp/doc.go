// Package resp reads and writes the Redis serialization protocol, RESP2 and
// RESP3, on the proxy's hot path.
//
// A Reader finds frame boundaries and decodes no more than routing needs: a
// request's command name and arguments are slices of the read buffer, and the
// raw bytes of every request and reply are there to forward untouched. In
// steady state reading a frame allocates nothing, and a reply that spans many
// reads is scanned once, not again from its start after every read.
//
// Requests are framed as Redis 7 frames them (networking.c:
// processInlineBuffer, processMultibulkBuffer, sdssplitargs), and a malformed
// request yields a ProtocolError carrying the text Redis itself would reply,
// so a client behind the proxy sees what a direct connection shows it. Where
// Redis's own choice depends on how the bytes happened to arrive, the Reader
// picks the stricter, deterministic reading; the doc comments say where.
//
// The package must never write to a connection, never hold one frame larger
// than its Limits in memory, and never import anything but the standard
// library: it is the leaf the router and the proxy build on.
package resp
