package resp

import (
	"errors"
	"strconv"
)

// ProtocolError is a malformed request. Msg is the text Redis itself replies,
// without "ERR ", for example "Protocol error: invalid bulk length". The
// caller replies "-ERR " + Msg (AppendError keeps that one line) and closes
// the connection: after a framing error nothing that follows can be trusted.
type ProtocolError struct {
	Msg string
}

func (e *ProtocolError) Error() string { return "resp: " + e.Msg }

// The texts of Redis 7's request errors (networking.c), so a client behind
// the proxy reads exactly what Redis would have told it.
const (
	msgTooBigInline    = "Protocol error: too big inline request"
	msgUnbalanced      = "Protocol error: unbalanced quotes in request"
	msgTooBigMbulk     = "Protocol error: too big mbulk count string"
	msgInvalidMbulkLen = "Protocol error: invalid multibulk length"
	msgTooBigBulkCount = "Protocol error: too big bulk count string"
	msgInvalidBulkLen  = "Protocol error: invalid bulk length"
	msgUnauthMbulkLen  = "Protocol error: unauthenticated multibulk length"
	msgUnauthBulkLen   = "Protocol error: unauthenticated bulk length"
	// Redis does not check the two bytes after a bulk payload; the Reader
	// does, so a client that miscounts a length is stopped at once rather
	// than having its next bytes read as a different command.
	msgBulkNotTerminated = "Protocol error: bulk data not followed by CRLF"
)

func protoErr(msg string) error { return &ProtocolError{Msg: msg} }

// errExpectedDollar writes the offending byte raw, as Redis's %c does;
// AppendError turns a CR or LF into a space, as Redis's error replies do.
func errExpectedDollar(c byte) error {
	return &ProtocolError{Msg: "Protocol error: expected '$', got '" + string([]byte{c}) + "'"}
}

func errRequestTooLarge(max int) error {
	return &ProtocolError{Msg: "Protocol error: request larger than " + strconv.Itoa(max) + " bytes"}
}

// errTooManyArgs refuses a request whose arguments would take more memory
// than MaxFrameLen (see argMemory).
func errTooManyArgs(max int) error {
	return &ProtocolError{Msg: "Protocol error: request larger than " + strconv.Itoa(max) + " bytes, counting " +
		strconv.FormatInt(argMemory, 10) + " bytes of memory for each argument after the first " + strconv.Itoa(keepArgs)}
}

// ErrMalformedReply is wrapped by the errors ReadReply returns for bytes that
// are not a RESP2 or RESP3 reply. The backend connection is out of step and
// must be closed.
var ErrMalformedReply = errors.New("resp: malformed reply")

// ErrReplyTooLarge is wrapped by the errors ReadReply returns for a reply
// beyond the Reader's Limits: a bulk over MaxBulkLen, nesting over MaxDepth,
// a frame over MaxFrameLen.
var ErrReplyTooLarge = errors.New("resp: reply too large")
