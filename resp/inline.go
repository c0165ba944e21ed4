package resp

// splitInline splits an inline request line (without its line ending) into
// c.Args the way Redis's sdssplitargs does, and reports false for unbalanced
// quotes:
//
//   - spaces, tabs, CR and LF end an argument, and any run of C isspace
//     bytes (those and \v, \f) separates arguments;
//   - "double quotes" take the escapes \n \r \t \b \a \xHH, and a backslash
//     before any other byte stands for that byte;
//   - 'single quotes' take only \' as an escape;
//   - a quote may start in the middle of an argument (a"b c" is "ab c"), but
//     the closing quote must be followed by a space or the end of the line.
//
// An argument without quotes is a slice of line. One with quotes is
// unescaped into c.buf, which is sized to the whole line before the first
// write: unescaping never lengthens the text, so c.buf is never reallocated
// under the arguments already in it.
func (c *Command) splitInline(line []byte) bool {
	c.args = c.resetArgs()
	c.buf = c.buf[:0]
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			c.Args = c.args
			return true
		}
		start := i
		for i < len(line) && !endsArg(line[i]) && line[i] != '"' && line[i] != '\'' {
			i++
		}
		if i == len(line) || endsArg(line[i]) {
			c.args = append(c.args, line[start:i:i])
			continue
		}
		if len(c.buf) == 0 && cap(c.buf) < len(line) {
			c.buf = make([]byte, 0, len(line))
		}
		from := len(c.buf)
		c.buf = append(c.buf, line[start:i]...)
		var ok bool
		if line[i] == '"' {
			i, ok = c.unquoteDouble(line, i+1)
		} else {
			i, ok = c.unquoteSingle(line, i+1)
		}
		if !ok {
			return false
		}
		c.args = append(c.args, c.buf[from:len(c.buf):len(c.buf)])
	}
}

// unquoteDouble appends to c.buf the double-quoted text starting at line[i],
// just after the opening quote, and returns the index after the closing one.
func (c *Command) unquoteDouble(line []byte, i int) (int, bool) {
	for i < len(line) {
		switch b := line[i]; {
		case b == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
			c.buf = append(c.buf, unhex(line[i+2])<<4|unhex(line[i+3]))
			i += 4
		case b == '\\' && i+1 < len(line):
			c.buf = append(c.buf, unescape(line[i+1]))
			i += 2
		case b == '"':
			return closeQuote(line, i)
		default:
			c.buf = append(c.buf, b)
			i++
		}
	}
	return i, false
}

// unquoteSingle is unquoteDouble for 'single quotes', where only \' is an
// escape.
func (c *Command) unquoteSingle(line []byte, i int) (int, bool) {
	for i < len(line) {
		switch b := line[i]; {
		case b == '\\' && i+1 < len(line) && line[i+1] == '\'':
			c.buf = append(c.buf, '\'')
			i += 2
		case b == '\'':
			return closeQuote(line, i)
		default:
			c.buf = append(c.buf, b)
			i++
		}
	}
	return i, false
}

// closeQuote checks the closing quote at line[i]: Redis wants a space or the
// end of the line after it, so "a"b is an error rather than one argument.
func closeQuote(line []byte, i int) (int, bool) {
	if i+1 < len(line) && !isSpace(line[i+1]) {
		return i, false
	}
	return i + 1, true
}

// isSpace is C's isspace in the "C" locale, which sdssplitargs uses to skip
// the blanks between arguments.
func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\v' || b == '\f' || b == '\r'
}

// endsArg reports the bytes that end an unquoted argument in sdssplitargs:
// fewer than isSpace, so a \v or \f inside an argument is kept in it.
func endsArg(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r'
}

func unescape(b byte) byte {
	switch b {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return b
}

func isHex(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
}

func unhex(b byte) byte {
	switch {
	case b <= '9':
		return b - '0'
	case b <= 'F':
		return b - 'A' + 10
	}
	return b - 'a' + 10
}
