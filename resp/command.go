package resp

import (
	"bytes"
	"slices"
	"unsafe"
)

// Command is one client request.
type Command struct {
	// Raw is the frame exactly as received: the whole multibulk, or the
	// inline line including its line ending.
	Raw []byte
	// Args holds the arguments; Args[0] is the command name as sent, in any
	// case. Multibulk arguments, and inline arguments without quotes, are
	// slices of the Reader's buffer; inline arguments that needed
	// unescaping live in the Command's own scratch, valid until the Command
	// is read into again. Capacity is clipped, so appending to one argument
	// never writes over the next.
	Args [][]byte
	// Inline reports whether the request came as an inline line rather
	// than a multibulk.
	Inline bool

	args [][]byte // reused backing array of Args
	buf  []byte   // reused space for inline arguments that needed unescaping
}

// Reset drops what cmd holds of a Reader's buffer (Raw, Args), so that a
// buffer grown for a large command is not kept alive through it.
func (c *Command) Reset() {
	c.Raw, c.Args, c.Inline = nil, nil, false
	if cap(c.args) > keepArgs {
		c.args = nil // sized for a command of many arguments
		return
	}
	c.args = c.resetArgs()
}

// keepArgs bounds the arrays of arguments (Command.args, cmdState.spans)
// kept between commands: one sized for a command of a million arguments
// would otherwise be kept for the connection's life.
const keepArgs = 1024

// argMemory is what the reader holds for each argument besides its bytes:
// a span while the frame is scanned, then an entry of Args. Beyond
// keepArgs arguments it counts towards MaxFrameLen with the request's
// bytes, so that a request of millions of one-byte arguments cannot make
// the reader hold many times the limit: "$1\r\nz\r\n" is 7 bytes on the
// wire and 47 in memory.
const argMemory = int64(unsafe.Sizeof(span{}) + unsafe.Sizeof([]byte(nil)))

// resetArgs empties args for the next command, dropping the previous
// one's arguments: left in the backing array past the new length, they
// would keep the buffer they point into alive, and one large value would
// pin a buffer of its size until a command with as many arguments came.
// The entries past len(args) are nil outside of a parse, so clearing the
// previous command's suffices.
func (c *Command) resetArgs() [][]byte {
	clear(c.args)
	return c.args[:0]
}

// dropPartial clears the arguments a declined parse wrote into args,
// which began as c.args[:0]: in args, and in c's own array, which append
// left behind holding the first of them if it grew args.
func (c *Command) dropPartial(args [][]byte) {
	clear(args)
	clear(c.args[:min(len(args), cap(c.args))])
}

// Name returns the command name as sent, Args[0], or nil if there is none.
func (c *Command) Name() []byte {
	if len(c.Args) == 0 {
		return nil
	}
	return c.Args[0]
}

// cmdState is how far the Reader got into a request that is not yet wholly
// buffered, so that the next read resumes there instead of scanning the frame
// again: a multibulk of a million arguments arriving in many reads is scanned
// once. Offsets are relative to the frame start.
type cmdState struct {
	pos   int    // start of the next line (or of the pending payload)
	scan  int    // where the search for the current line's end resumes
	end   int    // end of the pending bulk payload and its CRLF, 0 if none
	left  int64  // bulks still to come; 0 until the multibulk header is read
	spans []span // the arguments found so far
}

type span struct{ start, end int }

func (s *cmdState) reset() {
	s.pos, s.scan, s.end, s.left = 0, 0, 0, 0
	if cap(s.spans) > keepArgs {
		s.spans = nil
	} else {
		s.spans = s.spans[:0]
	}
}

// ReadCommand reads the next command into cmd, reading from the underlying
// reader as needed. Reading more may move the buffer, so slices from earlier
// commands become invalid. Like Redis it silently skips empty inline lines
// and multibulk headers with a count <= 0 ("*0\r\n", "*-1\r\n").
//
// At the end of the input it returns io.EOF, or io.ErrUnexpectedEOF when
// the input ends inside a command. A malformed request gives a
// *ProtocolError. After an error cmd holds nothing of use.
func (r *Reader) ReadCommand(cmd *Command) error {
	// The previous command's slices are dropped before reading: a buffer
	// grown for a large one may then go while this waits for the next.
	cmd.Reset()
	for {
		need, err := r.parseCommand(cmd)
		if err != nil || need == 0 {
			return err
		}
		if err := r.fill(need); err != nil {
			return err
		}
	}
}

// BufferedCommand parses the next command into cmd only if it is complete in
// the buffer. It never reads from the underlying reader and never moves the
// buffer, so slices of commands returned earlier stay valid: a proxy can
// take a whole pipeline, route it and flush once. ok is false when no
// complete command is buffered; a partial frame stays buffered for
// ReadCommand. err is a *ProtocolError found in buffered data. Unless ok,
// cmd holds nothing of use. The argument bytes of earlier commands stay
// valid, but not their Args slice: every call may reuse cmd's array of
// arguments, whatever its result.
func (r *Reader) BufferedCommand(cmd *Command) (ok bool, err error) {
	need, err := r.parseCommand(cmd)
	return err == nil && need == 0, err
}

// Unread gives back cmd, which the last ReadCommand or BufferedCommand
// call returned: the next call returns it again, from the same bytes.
// Nothing else may be called on r in between.
func (r *Reader) Unread(cmd *Command) {
	r.r -= len(cmd.Raw)
}

// parseCommand parses the command at the start of the buffered data, skipping
// empty ones. It returns need == 0 with cmd filled in and the frame
// consumed, or the number of bytes the frame needs buffered before parsing
// can go on.
func (r *Reader) parseCommand(cmd *Command) (need int, err error) {
	for r.r < r.w {
		// The parser sees no more than MaxFrameLen bytes, so a frame over
		// the limit fails the same way however its bytes arrive.
		b := r.buf[r.r:min(r.w, r.r+r.maxFrame)]
		var n int
		if b[0] == TypeArray {
			var ok bool
			if r.cmd.left == 0 {
				n, ok = r.shortCommand(b, cmd)
			}
			if !ok {
				n, need, err = r.scanMultibulk(b, cmd)
			}
		} else {
			n, need, err = r.scanInline(b, cmd)
		}
		if err == nil && need > r.maxFrame {
			err = errRequestTooLarge(r.maxFrame)
		}
		if err != nil || need > 0 {
			return need, err
		}
		r.r += n
		r.cmd.reset()
		if len(cmd.Args) > 0 {
			cmd.Raw = b[:n:n]
			return 0, nil
		}
	}
	return 1, nil
}

// scanMultibulk goes on scanning the multibulk b from where the last call
// stopped. It returns the frame length n once the frame is complete, with
// cmd filled in, or else the buffered length the frame needs.
//
// Redis's order of checks is kept, so that the same bad bytes give the same
// error text: a line's length limit, then its end, then its first byte,
// then its number.
func (r *Reader) scanMultibulk(b []byte, cmd *Command) (n, need int, err error) {
	s := &r.cmd
	if s.left == 0 {
		cr, need, err := r.countLine(b, msgTooBigMbulk)
		if cr < 0 {
			return 0, need, err
		}
		// Redis skips whatever byte follows the '\r'; the Reader wants a
		// '\n', so that it never frames bytes differently from a client
		// library that looks for CRLF.
		count, ok := ParseInt(b[1:cr])
		if !ok || count > r.lim.MaxMultiBulkLen || b[cr+1] != '\n' {
			return 0, 0, protoErr(msgInvalidMbulkLen)
		}
		if r.lim.Unauthenticated && count > unauthMaxMultiBulk {
			return 0, 0, protoErr(msgUnauthMbulkLen)
		}
		s.pos, s.scan = cr+2, cr+2
		if count <= 0 {
			cmd.args = cmd.resetArgs()
			cmd.Args, cmd.Inline = cmd.args, false
			return s.pos, 0, nil
		}
		// Every bulk takes at least 6 bytes ("$0\r\n\r\n"): refuse now a
		// count that cannot fit rather than buffer up to the limit first.
		if count > int64(r.maxFrame-s.pos)/6 {
			return 0, 0, errRequestTooLarge(r.maxFrame)
		}
		if count > keepArgs && count*6+(count-keepArgs)*argMemory > int64(r.maxFrame-s.pos) {
			return 0, 0, errTooManyArgs(r.maxFrame)
		}
		s.left = count
	}
	for s.left > 0 {
		if s.end == 0 {
			cr, need, err := r.countLine(b, msgTooBigBulkCount)
			if cr < 0 {
				return 0, need, err
			}
			if b[s.pos] != TypeBulkString {
				return 0, 0, errExpectedDollar(b[s.pos])
			}
			size, ok := ParseInt(b[s.pos+1 : cr])
			if !ok || size < 0 || size > r.lim.MaxBulkLen || b[cr+1] != '\n' {
				return 0, 0, protoErr(msgInvalidBulkLen)
			}
			if r.lim.Unauthenticated && size > unauthMaxBulk {
				return 0, 0, protoErr(msgUnauthBulkLen)
			}
			if size > int64(r.maxFrame-cr-4) {
				return 0, 0, errRequestTooLarge(r.maxFrame)
			}
			s.pos = cr + 2
			s.end = s.pos + int(size) + 2
		}
		if len(b) < s.end {
			// The payload's length is known: ask for all of it at once.
			return 0, s.end, nil
		}
		if b[s.end-2] != '\r' || b[s.end-1] != '\n' {
			return 0, 0, protoErr(msgBulkNotTerminated)
		}
		if len(s.spans) == cap(s.spans) {
			// Doubling, up to the count still to come: append grows a
			// large slice by a quarter, leaving about four times its
			// final size behind as garbage for a request of a million
			// arguments.
			grow := min(max(cap(s.spans), 16), int(s.left))
			s.spans = slices.Grow(s.spans, grow)
		}
		s.spans = append(s.spans, span{s.pos, s.end - 2})
		s.pos, s.scan, s.end = s.end, s.end, 0
		s.left--
	}
	cmd.args = cmd.resetArgs()
	if cap(cmd.args) < len(s.spans) {
		cmd.args = make([][]byte, 0, len(s.spans)) // at once, not by append's growth
	}
	for _, sp := range s.spans {
		cmd.args = append(cmd.args, b[sp.start:sp.end:sp.end])
	}
	cmd.Args, cmd.Inline = cmd.args, false
	return s.pos, 0, nil
}

// countLine finds the '\r' ending the count line at r.cmd.pos, as Redis does
// (it looks for '\r', then wants one more byte). It returns the index of the
// '\r' and the byte after it, or cr < 0 with the buffered length needed, or
// the error tooBig when MaxInlineLen bytes hold no '\r'.
func (r *Reader) countLine(b []byte, tooBig string) (cr, need int, err error) {
	s := &r.cmd
	limit := min(len(b), s.pos+r.lim.MaxInlineLen+1)
	i := bytes.IndexByte(b[s.scan:limit], '\r')
	if i < 0 {
		if len(b)-s.pos > r.lim.MaxInlineLen {
			return -1, 0, protoErr(tooBig)
		}
		s.scan = len(b)
		return -1, len(b) + 1, nil
	}
	cr = s.scan + i
	s.scan = cr
	if cr+1 >= len(b) {
		return -1, cr + 2, nil
	}
	return cr, 0, nil
}

// scanInline finds the end of the inline request b and splits it into cmd.
// Redis accepts a longer line when its newline happens to arrive in the same
// read; the Reader accepts a line (without its "\n") of at most MaxInlineLen
// bytes however it arrives, so the result never depends on packet
// boundaries.
func (r *Reader) scanInline(b []byte, cmd *Command) (n, need int, err error) {
	s := &r.cmd
	limit := min(len(b), r.lim.MaxInlineLen+1)
	i := bytes.IndexByte(b[s.scan:limit], '\n')
	if i < 0 {
		if len(b) > r.lim.MaxInlineLen {
			return 0, 0, protoErr(msgTooBigInline)
		}
		s.scan = len(b)
		return 0, len(b) + 1, nil
	}
	nl := s.scan + i
	line := b[:nl]
	if nl > 0 && line[nl-1] == '\r' {
		line = line[:nl-1]
	}
	if !cmd.splitInline(line) {
		return 0, 0, protoErr(msgUnbalanced)
	}
	cmd.Inline = true
	return nl + 1, 0, nil
}
