package proxy

import (
	"errors"
	"net"
	"syscall"
)

// Errors the data path reports. Their client-facing text is chosen by
// clientError, kept apart from the Go error text.
var (
	// ErrServerClosed is returned by Serve after Close or Shutdown.
	ErrServerClosed = errors.New("proxy: server closed")
	// errNoMaster: no verified master within HoldTimeout. Nothing was sent.
	errNoMaster = errors.New("proxy: no verified master")
	// errFenced: the generation the connection belonged to was replaced.
	errFenced = errors.New("proxy: master changed")
	// errStalled: a failover began while requests on the connection had
	// waited over StallTimeout for a reply (Hold closes it).
	errStalled = errors.New("proxy: master stopped answering while commands were held")
	// errHeldPinned: commands were held (a failover began, or the master
	// could not be verified) while the connection was blocked or in a
	// tunnel (subscribed, tracking, MONITOR), where nothing is held: Hold
	// closes it, so that a master about to be replaced cannot acknowledge
	// what goes through it.
	errHeldPinned = errors.New("proxy: commands were held while the connection was blocked or subscribed")
	// errUnblocked: a failover began while a pop or stream read was
	// blocked, and the old master, asked with CLIENT UNBLOCK … ERROR,
	// ended the wait before the command took anything (unblockHeld). It
	// did not run: the session sends it again to the master the failover
	// leaves.
	errUnblocked = errors.New("proxy: a failover began while the command was blocked; the old master unblocked it before it ran")
	// errClientGone: the client went away while its command was blocked.
	errClientGone = errors.New("proxy: client closed the connection")
	// errPeekLimit: a client sent more than MaxRequestBytes while its
	// command was blocked (clientReader.watch). If Redis has the command
	// blocked, the client is closed, as Redis closes one past
	// client-query-buffer-limit (session.answeredPastLimit).
	errPeekLimit = errors.New("proxy: the client sent more than max_request_bytes while its command was blocked")
	// errTunnelReset: the client's RESET ended its tunnel (endTunnel).
	errTunnelReset = errors.New("proxy: tunnel ended by RESET")
	// errPoolClosed: the session's pool went away under it.
	errPoolClosed = errors.New("proxy: pool closed")
)

// deliberate reports whether a connection was closed on purpose rather
// than lost.
func deliberate(err error) bool {
	return errors.Is(err, errPoolClosed) || errors.Is(err, errFenced) ||
		errors.Is(err, ErrServerClosed) || errors.Is(err, errClientGone) || errors.Is(err, errHeldPinned) ||
		errors.Is(err, errTunnelReset)
}

// ReplyError is an error reply Redis gave during a backend handshake, for
// example to AUTH or SELECT. The client gets it verbatim.
type ReplyError struct{ Msg string }

func (e *ReplyError) Error() string { return "proxy: redis replied: " + e.Msg }

// notSentError: the request was refused before any of it was written, so
// the client may safely retry.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return "proxy: not sent: " + e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

func notSent(err error) error {
	var ns *notSentError
	if err == nil || errors.As(err, &ns) {
		return err
	}
	return &notSentError{err}
}

// dialError wraps a failure to connect: nothing was sent, so a retry is safe.
type dialError struct{ err error }

func (e *dialError) Error() string { return "proxy: dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// clientError turns a Go error into the RESP error text a client gets
// (without the leading '-'). Errors for commands that were never sent use
// TRYAGAIN, which clients may retry; errors for commands whose outcome is
// unknown use ERR, so that a non-idempotent write is not retried blindly.
func clientError(err error) string {
	var re *ReplyError
	if errors.As(err, &re) {
		return re.Msg
	}
	var de *dialError
	var ns *notSentError
	switch {
	case errors.Is(err, errNoMaster):
		return "TRYAGAIN switchyard: no verified master for this group, try again"
	case errors.As(err, &de) && (errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)):
		// The master may be fine: the proxy could not open a socket.
		return "TRYAGAIN switchyard: the proxy is out of file descriptors (open files limit), try again"
	case errors.As(err, &de):
		return "TRYAGAIN switchyard: master unreachable, try again"
	case errors.Is(err, errUnblocked):
		return "TRYAGAIN switchyard: a failover began while the command was blocked; it was unblocked before it ran, try again"
	case errors.As(err, &ns) && !errors.Is(err, errFenced) && !errors.Is(err, errPoolClosed):
		// The connection failed (timed out, lost) before these were written.
		return "TRYAGAIN switchyard: connection to the master lost before sending; not sent, try again"
	case errors.As(err, &ns):
		return "TRYAGAIN switchyard: master changed, not sent; try again"
	case errors.Is(err, errNoReplica):
		return replyNoReplica
	case errors.Is(err, errFenced):
		return "ERR switchyard: master changed before the reply; the command may or may not have run"
	case errors.Is(err, errStalled):
		return "ERR switchyard: master stopped answering while commands were held; the command may or may not have run"
	case errors.Is(err, errHeldPinned):
		return "ERR switchyard: a failover began while the command was blocked; the command may or may not have run"
	case errors.Is(err, errPeekLimit):
		return "ERR switchyard: the client sent more than max_request_bytes while its command was blocked, so the proxy closed the connection (as Redis does past client-query-buffer-limit); the command may or may not have run"
	case errors.Is(err, errClientGone):
		// The client half-closed its connection (a full close reads
		// nothing). The proxy cannot tell whether Redis had blocked the
		// command, which Redis would then drop with the client, or had
		// run it already: so it stops waiting, and says so.
		return "ERR switchyard: the client closed its side of the connection while the command waited, so the proxy stopped waiting; the command may or may not have run"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "ERR switchyard: timed out waiting for the master; the command may or may not have run"
	}
	return "ERR switchyard: lost the connection to the master before the reply; the command may or may not have run"
}
