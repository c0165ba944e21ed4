package facade

// globMatch reports whether s matches the glob pattern as Redis matches
// PSUBSCRIBE patterns (and KEYS): '*' any run of bytes, '?' any one byte,
// "[abc]", "[^abc]" and ranges "[a-z]" (either way round) for one byte,
// and '\' to take the next byte literally, inside a class too. An
// unclosed class runs to the end of the pattern, as in Redis. As in
// Redis, an empty name matches only an empty pattern.
func globMatch(pattern, s string) bool {
	if s == "" {
		return pattern == ""
	}
	p, i := 0, 0
	// Where to resume after the last '*': the pattern just past it and
	// the next byte of s it could swallow. Backtracking to the latest star
	// only is enough for globs, and keeps the cost to len(p)×len(s).
	star, next := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				for p < len(pattern) && pattern[p] == '*' {
					p++
				}
				if p == len(pattern) {
					return true
				}
				star, next = p, i
				continue
			case '?':
				p++
				i++
				continue
			case '[':
				if end, ok := matchClass(pattern, p+1, s[i]); ok {
					p = end
					i++
					continue
				}
			case '\\':
				if p+1 < len(pattern) {
					p++
				}
				fallthrough
			default:
				if pattern[p] == s[i] {
					p++
					i++
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		next++
		p, i = star, next
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchClass matches b against the class that starts at pattern[p] (just
// past '['). It returns where the pattern continues after the class and
// whether b is in it.
func matchClass(pattern string, p int, b byte) (int, bool) {
	not := p < len(pattern) && pattern[p] == '^'
	if not {
		p++
	}
	in := false
	for p < len(pattern) && pattern[p] != ']' {
		switch {
		case pattern[p] == '\\' && p+1 < len(pattern):
			p++
			in = in || pattern[p] == b
		case p+2 < len(pattern) && pattern[p+1] == '-':
			// Redis compares range ends as C chars, signed on the
			// platforms it is built for here (x86-64): bytes from 0x80
			// come before the ASCII ones.
			lo, hi, c := int8(pattern[p]), int8(pattern[p+2]), int8(b)
			if lo > hi {
				lo, hi = hi, lo
			}
			in = in || (c >= lo && c <= hi)
			p += 2
		default:
			in = in || pattern[p] == b
		}
		p++
	}
	if p < len(pattern) {
		p++ // the ']'
	}
	return p, in != not
}
