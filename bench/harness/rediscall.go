package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// callTimeout bounds one command of the harness's own Redis calls.
const callTimeout = 2 * time.Second

// errNil is a nil bulk reply ($-1).
var errNil = errors.New("redis: nil")

// redisConn is the harness's own Redis connection: enough RESP for
// CONFIG SET, INFO, SET, GET and WAIT, so that the harness needs no
// client library. It is not safe for concurrent use.
type redisConn struct {
	c net.Conn
	r *bufio.Reader
}

// dialRedis connects to addr; tc non-nil means TLS.
func dialRedis(addr string, tc *tls.Config) (*redisConn, error) {
	d := net.Dialer{Timeout: callTimeout}
	var c net.Conn
	var err error
	if tc != nil {
		c, err = tls.DialWithDialer(&d, "tcp", addr, tc)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	return &redisConn{c: c, r: bufio.NewReader(c)}, nil
}

func (rc *redisConn) close() { _ = rc.c.Close() }

// do sends args as a RESP array and reads one reply: a simple string, an
// integer or a bulk string, returned as text. An error reply is a Go
// error; a nil bulk string is errNil.
func (rc *redisConn) do(args ...string) (string, error) {
	_ = rc.c.SetDeadline(time.Now().Add(callTimeout))
	if _, err := rc.c.Write(appendCommand(nil, args...)); err != nil {
		return "", fmt.Errorf("redis: %s: %w", args[0], err)
	}
	s, err := readReply(rc.r)
	if err != nil {
		return "", fmt.Errorf("redis: %s: %w", args[0], err)
	}
	return s, nil
}

// appendCommand appends args to dst as a RESP array of bulk strings.
func appendCommand(dst []byte, args ...string) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(len(args)), 10)
	dst = append(dst, "\r\n"...)
	for _, a := range args {
		dst = append(dst, '$')
		dst = strconv.AppendInt(dst, int64(len(a)), 10)
		dst = append(dst, "\r\n"...)
		dst = append(dst, a...)
		dst = append(dst, "\r\n"...)
	}
	return dst
}

// readReply reads one non-aggregate RESP2 reply.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("%.100q", line)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < -1 {
			return "", fmt.Errorf("bad bulk length %.100q", line)
		}
		if n == -1 {
			return "", errNil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		if string(buf[n:]) != "\r\n" {
			return "", fmt.Errorf("bulk string of %d bytes not followed by CRLF", n)
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("unexpected reply %.100q", line)
	}
}

// cmdstatCalls returns the calls= count of cmdstat_<cmd> in the text of
// INFO commandstats, 0 when the command has not run yet (Redis lists
// only commands that have).
//
//	# Commandstats
//	cmdstat_get:calls=1203,usec=402,usec_per_call=0.33,rejected_calls=0,failed_calls=0
func cmdstatCalls(info, cmd string) (int64, error) {
	prefix := "cmdstat_" + strings.ToLower(cmd) + ":"
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix)
		if !ok {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return 0, fmt.Errorf("INFO commandstats: %.100q: %w", line, err)
				}
				return n, nil
			}
		}
		return 0, fmt.Errorf("INFO commandstats: %.100q has no calls=", line)
	}
	return 0, nil
}
