package resp

// ParseInt parses b as a strict decimal int64, exactly as Redis's string2ll
// does: an optional '-', no '+', no spaces, no leading zeros except "0"
// itself, and no "-0". Lengths and counts on the wire are parsed with it, so
// the Reader accepts precisely the numbers Redis accepts.
func ParseInt(b []byte) (int64, bool) {
	// string2ll rejects 21 bytes or more (LONG_STR_SIZE) before looking.
	if len(b) == 0 || len(b) >= 21 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1)/10 || v*10 > 1<<64-1-d {
			return 0, false
		}
		v = v*10 + d
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true
	}
	if v > 1<<63-1 {
		return 0, false
	}
	return int64(v), true
}
