package drf

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseQS parses a form body as Django's QueryDict does: pairs separated
// by "&" only (not ";", since Django 3.2), blank values kept, "+" as space,
// invalid percent escapes left as they are. A body that is not valid UTF-8
// is read as ISO-8859-1 instead (QueryDict's fallback for "misbehaving user
// agents"), and percent escapes decode as UTF-8 with errors='replace'.
func parseQS(s string) map[string][]string {
	if !utf8.ValidString(s) {
		s = latin1ToUTF8(s)
	}
	values := make(map[string][]string)
	for _, pair := range strings.Split(s, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, v = unquotePlus(k), unquotePlus(v)
		values[k] = append(values[k], v)
	}
	return values
}

// latin1ToUTF8 decodes s as ISO-8859-1: each byte is the code point of its
// value.
func latin1ToUTF8(s string) string {
	out := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		out = utf8.AppendRune(out, rune(s[i]))
	}
	return string(out)
}

// unquotePlus is Python's urllib.parse.unquote_plus with errors='replace'
// on s, which is valid UTF-8: each run of ASCII characters is
// percent-decoded to bytes and those decoded as decodeUTF8 does; other
// characters stay as they are.
func unquotePlus(s string) string {
	s = strings.ReplaceAll(s, "+", " ")
	if !strings.Contains(s, "%") {
		return s
	}
	var out, run []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			// Not ASCII: the end of a run. The bytes of a whole
			// character follow, and its lead byte ends any sequence
			// the run left open, so decoding here is as Python's.
			out = append(out, decodeUTF8(string(run))...)
			run = run[:0]
			out = append(out, c)
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			n, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			run = append(run, byte(n))
			i += 2
		default:
			run = append(run, c)
		}
	}
	return string(append(out, decodeUTF8(string(run))...))
}

// decodeUTF8 is Python's bytes.decode('utf-8', 'replace'): each maximal
// subpart of an ill-formed sequence becomes one U+FFFD (Unicode's
// "substitution of maximal subparts"). A byte that starts no sequence is
// one subpart; so is a lead byte with the continuation bytes that validly
// follow it before the sequence breaks off: "\xe2\x82x" is "\ufffdx", where
// Go's utf8.DecodeRuneInString gives two U+FFFD and strings.ToValidUTF8 one
// for any run of bad bytes.
func decodeUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r != utf8.RuneError || size > 1 {
			out = append(out, s[i:i+size]...)
			i += size
			continue
		}
		out = append(out, "\uFFFD"...)
		i += utf8MaximalSubpart(s[i:])
	}
	return string(out)
}

// utf8MaximalSubpart is the length of the maximal subpart at the start of
// s, which does not start with a valid sequence: the lead byte and the
// continuation bytes in the ranges of Unicode's Table 3-7 that follow it,
// at least 1.
func utf8MaximalSubpart(s string) int {
	c := s[0]
	var need int         // continuation bytes after the lead
	lo, hi := 0x80, 0xBF // the range of the first of them
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	default: // 0x80–0xC1, 0xF5–0xFF
		return 1
	}
	n := 1
	for ; n <= need && n < len(s); n++ {
		if b := int(s[n]); b < lo || b > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return n
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}
