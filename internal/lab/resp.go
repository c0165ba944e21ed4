package lab

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// This file holds a deliberately tiny RESP2 client used for lab's own
// readiness and state probes. It is used instead of go-redis because probes
// need exact control: one connection, no pooling, no dial retries or
// back-off, no handshake commands that older servers reject, and hard
// per-call deadlines (a SIGSTOPped server must not hang a probe).

// probeTimeout bounds one probe round trip (dial, optional AUTH, command).
const probeTimeout = 500 * time.Millisecond

// pollInterval is how often wait loops re-check their condition.
const pollInterval = 15 * time.Millisecond

// respError is an error reply from the server ("-ERR ...").
type respError string

func (e respError) Error() string { return string(e) }

type respConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialRESP(ctx context.Context, addr, password string, tc *tls.Config) (*respConn, error) {
	d := net.Dialer{Timeout: probeTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		c = tls.Client(c, tc)
	}
	rc := &respConn{c: c, r: bufio.NewReader(c)}
	if password != "" {
		if _, err := rc.do(ctx, "AUTH", password); err != nil {
			rc.close()
			return nil, fmt.Errorf("AUTH: %w", err)
		}
	}
	return rc, nil
}

func (rc *respConn) close() { _ = rc.c.Close() }

// do sends one command and reads its reply. Replies are decoded as: simple
// and bulk strings -> string, null -> nil, integers -> int64, arrays -> []any,
// error replies -> respError (returned as the error).
func (rc *respConn) do(ctx context.Context, args ...string) (any, error) {
	deadline := time.Now().Add(probeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := rc.c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(rc.c, b.String()); err != nil {
		return nil, err
	}
	v, err := readRESP(rc.r)
	if err != nil {
		return nil, err
	}
	if e, ok := v.(respError); ok {
		return nil, e
	}
	return v, nil
}

func readRESP(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("lab: malformed RESP line %q", line)
	}
	typ, body := line[0], line[1:len(line)-2]
	switch typ {
	case '+':
		return body, nil
	case '-':
		return respError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		out := make([]any, n)
		for i := range out {
			v, err := readRESP(r)
			if err != nil {
				return nil, err
			}
			if e, ok := v.(respError); ok {
				v = error(e)
			}
			out[i] = v
		}
		return out, nil
	default:
		return nil, fmt.Errorf("lab: unexpected RESP type %q", typ)
	}
}

// prober caches one connection per address across the iterations of a wait
// loop, so that polling does not open (and leave in TIME_WAIT) a connection
// per poll. A connection that fails is dropped and re-dialled next time.
type prober struct {
	conns map[string]*respConn
	tls   *tls.Config // dial with TLS, if set
}

func newProber() *prober { return &prober{conns: map[string]*respConn{}} }

func (p *prober) do(ctx context.Context, addr, password string, args ...string) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	rc := p.conns[addr]
	if rc == nil {
		var err error
		rc, err = dialRESP(ctx, addr, password, p.tls)
		if err != nil {
			return nil, err
		}
		p.conns[addr] = rc
	}
	v, err := rc.do(ctx, args...)
	var re respError
	if err != nil && !errors.As(err, &re) {
		// Transport error: the connection state is unknown; drop it.
		rc.close()
		delete(p.conns, addr)
	}
	return v, err
}

// drop closes the cached connection to addr, if any.
func (p *prober) drop(addr string) {
	if rc := p.conns[addr]; rc != nil {
		rc.close()
		delete(p.conns, addr)
	}
}

func (p *prober) close() {
	for a, rc := range p.conns {
		rc.close()
		delete(p.conns, a)
	}
}

// infoField returns the value of key in an INFO reply.
func infoField(info, key string) string {
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimRight(line, "\r")
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return v
		}
	}
	return ""
}

// pairsToMap converts a flat RESP2 key/value array (as returned by
// SENTINEL MASTER) to a map.
func pairsToMap(v any) map[string]string {
	arr, _ := v.([]any)
	m := make(map[string]string, len(arr)/2)
	for i := 0; i+1 < len(arr); i += 2 {
		k, _ := arr[i].(string)
		val, _ := arr[i+1].(string)
		m[k] = val
	}
	return m
}

// pairsList converts an array of flat key/value arrays (SENTINEL REPLICAS,
// SENTINEL SENTINELS) to a slice of maps.
func pairsList(v any) []map[string]string {
	arr, _ := v.([]any)
	out := make([]map[string]string, 0, len(arr))
	for _, e := range arr {
		out = append(out, pairsToMap(e))
	}
	return out
}
