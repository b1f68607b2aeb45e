package drf

import (
	"strings"
	"unicode/utf8"
)

// Result is what ParseAuthorization makes of an Authorization header.
type Result uint8

const (
	// Anonymous: no header, or a scheme other than the keyword. Token
	// authentication does not apply (DRF's authenticate() returns None).
	Anonymous Result = iota
	// Key: "<keyword> <key>"; the key is returned.
	Key
	// KeyHex40: Key, and the key is 40 lowercase hex characters, the
	// only keys DRF generates.
	KeyHex40
	// NoCredentials: the keyword alone.
	NoCredentials
	// Spaces: more than one word after the keyword.
	Spaces
	// InvalidChars: the key is not valid UTF-8.
	InvalidChars
)

// HasKey reports whether the header carried a key.
func (r Result) HasKey() bool { return r == Key || r == KeyHex40 }

// Err is DRF's refusal of a malformed header, or nil.
func (r Result) Err() *Error {
	switch r {
	case NoCredentials:
		return ErrNoCredentials
	case Spaces:
		return ErrSpaces
	case InvalidChars:
		return ErrInvalidChars
	}
	return nil
}

// ParseAuthorization reads the Authorization header values exactly as
// DRF's TokenAuthentication.authenticate does:
//
//   - several header lines are joined with "," (no space), as gunicorn,
//     wsgiref and Django's ASGI handler join them before DRF sees them;
//   - the value is split on runs of the six ASCII whitespace bytes (Python's
//     bytes.split()), never on NBSP or other Unicode spaces;
//   - the first word is compared with keyword ASCII-case-insensitively;
//   - the key must be valid UTF-8 and is returned verbatim.
//
// It also tells a key of DRF's own shape (KeyHex40) from any other
// (Key). The shape nearly every request has, one header line with the
// keyword, one space and 40 lowercase hex characters, is answered in one
// pass. The returned key is a substring of the header value: with one
// header line, parsing allocates nothing.
func ParseAuthorization(values []string, keyword string) (key string, res Result) {
	var s string
	switch len(values) {
	case 0:
		return "", Anonymous
	case 1:
		s = values[0]
		// What nearly every request has: the keyword, one space and a key
		// of visible ASCII characters, which is one word and valid UTF-8.
		if n := len(keyword); len(s) > n+1 && s[n] == ' ' && asciiEqualFold(s[:n], keyword) {
			if k := s[n+1:]; IsHex40(k) {
				return k, KeyHex40
			} else if isVisibleASCII(k) {
				return k, Key
			}
		}
	default:
		s = strings.Join(values, ",")
	}

	word, rest := nextWord(s)
	if word == "" || !asciiEqualFold(word, keyword) {
		return "", Anonymous
	}
	key, rest = nextWord(rest)
	if key == "" {
		return "", NoCredentials
	}
	if extra, _ := nextWord(rest); extra != "" {
		return "", Spaces
	}
	if !utf8.ValidString(key) {
		return "", InvalidChars
	}
	if IsHex40(key) {
		return key, KeyHex40
	}
	return key, Key
}

// IsHex40 reports whether key is 40 lowercase hex characters, the only
// keys DRF generates. It reads the key eight bytes at a time (a range check
// on each byte of a word at once), since it runs on every request.
func IsHex40(key string) bool {
	if len(key) != 40 {
		return false
	}
	var bad uint64
	for i := 0; i < 40; i += 8 {
		bad |= notLowerHex8(load64(key[i : i+8]))
	}
	return bad == 0
}

// IsLowerHex reports whether s is made of lowercase hex characters only
// (knox's keys end in 64 of them), eight bytes at a time.
func IsLowerHex(s string) bool {
	var bad uint64
	i := 0
	for ; i+8 <= len(s); i += 8 {
		bad |= notLowerHex8(load64(s[i : i+8]))
	}
	for ; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return bad == 0
}

// isVisibleASCII reports whether s is made of visible ASCII characters
// only (0x21–0x7e): one word for Python's split(), and valid UTF-8.
func isVisibleASCII(s string) bool {
	const (
		ones = 0x0101010101010101
		high = 0x80 * ones
	)
	var bad uint64
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := load64(s[i : i+8])
		// A byte below 0x21 or above 0x7e sets its top bit in one of these
		// (for bytes below 0x80; bytes at or above it have it already).
		bad |= w | (w + (0x80-0x7f)*ones) | ^(w + (0x80-0x21)*ones)
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return bad&high == 0
}

// load64 is the eight bytes of s, little-endian (one load once compiled).
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// notLowerHex8 is non-zero unless each of the eight bytes of w is 0-9 or
// a-f. For a byte b below 0x80, b + (0x80 - lo) sets the byte's top bit
// exactly when b >= lo, and b + (0x7f - hi) exactly when b > hi, without a
// carry into the next byte; a byte at or above 0x80 is refused first.
func notLowerHex8(w uint64) uint64 {
	const (
		ones = 0x0101010101010101
		high = 0x80 * ones
	)
	if w&high != 0 {
		return 1
	}
	digit := (w + (0x80-'0')*ones) &^ (w + (0x7f-'9')*ones)
	letter := (w + (0x80-'a')*ones) &^ (w + (0x7f-'f')*ones)
	return (digit|letter)&high ^ high
}

// ValidKeyword accepts what can stand as the first word of an
// Authorization header: one or more visible ASCII characters.
func ValidKeyword(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] >= 0x7f {
			return false
		}
	}
	return true
}

// isSpace reports whether b is one of the bytes Python's bytes.split()
// splits on: SP, HT, LF, VT, FF, CR.
func isSpace(b byte) bool {
	return b == ' ' || (b >= '\t' && b <= '\r')
}

// nextWord skips leading ASCII whitespace and returns the word that follows
// and the remainder after it. The word is empty when only whitespace is left.
func nextWord(s string) (word, rest string) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	j := i
	for j < len(s) && !isSpace(s[j]) {
		j++
	}
	return s[i:j], s[j:]
}

// asciiEqualFold compares like Python's bytes.lower() == bytes.lower():
// only A–Z fold; any other byte must match exactly.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	if a == b { // what clients nearly always send
		return true
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
