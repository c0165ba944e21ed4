package resp

import (
	"strconv"
	"strings"
)

// The Append functions encode RESP in the style of strconv.AppendInt: they
// append to dst and return the extended slice, so a writer can build a whole
// batch of replies in one reused buffer and flush it with one write.

// AppendArrayLen appends an array header, *<n>\r\n. A negative n gives the
// RESP2 null array.
func AppendArrayLen(dst []byte, n int) []byte {
	return appendHeader(dst, TypeArray, int64(n))
}

// AppendBulk appends b as a bulk string, $<len>\r\n<b>\r\n.
func AppendBulk(dst, b []byte) []byte {
	dst = appendHeader(dst, TypeBulkString, int64(len(b)))
	dst = append(dst, b...)
	return append(dst, '\r', '\n')
}

// AppendBulkString appends s as a bulk string, $<len>\r\n<s>\r\n.
func AppendBulkString(dst []byte, s string) []byte {
	dst = appendHeader(dst, TypeBulkString, int64(len(s)))
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}

// AppendSimpleString appends s as a simple string, +<s>\r\n. A CR or LF in s
// becomes a space: a simple string cannot hold them, and letting one through
// would end the frame early and desynchronise the client.
func AppendSimpleString(dst []byte, s string) []byte {
	return appendLine(append(dst, TypeSimpleString), s)
}

// AppendError appends msg as an error reply, -<msg>\r\n. msg is given without
// the leading '-', for example "ERR unknown command". A CR or LF in msg
// becomes a space, as in Redis's own error replies, so a message that echoes
// client input stays one line.
func AppendError(dst []byte, msg string) []byte {
	return appendLine(append(dst, TypeError), msg)
}

// AppendInt appends n as an integer reply, :<n>\r\n.
func AppendInt(dst []byte, n int64) []byte {
	return appendHeader(dst, TypeInteger, n)
}

// AppendNull appends the null reply of protocol version proto: "_\r\n" for
// RESP3 (proto 3 and later), "$-1\r\n" otherwise.
func AppendNull(dst []byte, proto int) []byte {
	if proto >= 3 {
		return append(dst, TypeNull, '\r', '\n')
	}
	return append(dst, TypeBulkString, '-', '1', '\r', '\n')
}

// AppendCommand appends args as a multibulk request, the form every Redis
// server accepts: *<n>\r\n then one bulk string per argument.
func AppendCommand(dst []byte, args [][]byte) []byte {
	dst = AppendArrayLen(dst, len(args))
	for _, a := range args {
		dst = AppendBulk(dst, a)
	}
	return dst
}

func appendHeader(dst []byte, typ byte, n int64) []byte {
	dst = append(dst, typ)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, '\r', '\n')
}

func appendLine(dst []byte, s string) []byte {
	for {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			break
		}
		dst = append(dst, s[:i]...)
		dst = append(dst, ' ')
		s = s[i+1:]
	}
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}
