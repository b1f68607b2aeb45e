package tokenauth

import (
	"strings"
	"unicode/utf8"
)

// headerResult is what parseAuthorization makes of an Authorization header.
type headerResult uint8

const (
	// headerAnonymous: no header, or a scheme other than the keyword. Token
	// authentication does not apply (DRF's authenticate() returns None).
	headerAnonymous headerResult = iota
	// headerKey: "<keyword> <key>"; the key is returned.
	headerKey
	// headerNoCredentials: the keyword alone.
	headerNoCredentials
	// headerSpaces: more than one word after the keyword.
	headerSpaces
	// headerInvalidChars: the key is not valid UTF-8.
	headerInvalidChars
)

// parseAuthorization reads the Authorization header values exactly as DRF's
// TokenAuthentication.authenticate does:
//
//   - several header lines are joined with "," (no space), as gunicorn,
//     wsgiref and Django's ASGI handler join them before DRF sees them;
//   - the value is split on runs of the six ASCII whitespace bytes (Python's
//     bytes.split()), never on NBSP or other Unicode spaces;
//   - the first word is compared with keyword ASCII-case-insensitively;
//   - the key must be valid UTF-8 and is returned verbatim.
//
// The returned key is a substring of the header value: with one header line,
// parsing allocates nothing.
func parseAuthorization(values []string, keyword string) (key string, res headerResult) {
	var s string
	switch len(values) {
	case 0:
		return "", headerAnonymous
	case 1:
		s = values[0]
	default:
		s = strings.Join(values, ",")
	}

	word, rest := nextWord(s)
	if word == "" || !asciiEqualFold(word, keyword) {
		return "", headerAnonymous
	}
	key, rest = nextWord(rest)
	if key == "" {
		return "", headerNoCredentials
	}
	if extra, _ := nextWord(rest); extra != "" {
		return "", headerSpaces
	}
	if !utf8.ValidString(key) {
		return "", headerInvalidChars
	}
	return key, headerKey
}

// hexKey reads the shape nearly every request has: one header line, the
// keyword, one space, and a key of 40 lowercase hex characters, as DRF
// generates them. On that shape it answers what parseAuthorization answers,
// in one pass that also proves the key passes the hex40 gate; on any other
// (ok false) the caller takes the general way.
func hexKey(values []string, keyword string) (key string, ok bool) {
	if len(values) != 1 {
		return "", false
	}
	s, n := values[0], len(keyword)
	if len(s) != n+1+40 || s[n] != ' ' || !asciiEqualFold(s[:n], keyword) {
		return "", false
	}
	key = s[n+1:]
	return key, isHex40(key)
}

// isHex40 reports whether key is 40 lowercase hex characters, the only
// keys DRF generates.
func isHex40(key string) bool {
	if len(key) != 40 {
		return false
	}
	var bad byte
	for i := 0; i < 40; i++ {
		bad |= notLowerHex[key[i]]
	}
	return bad == 0
}

// notLowerHex is 1 for every byte but 0-9 and a-f.
var notLowerHex = func() (t [256]byte) {
	for i := range t {
		if (i < '0' || i > '9') && (i < 'a' || i > 'f') {
			t[i] = 1
		}
	}
	return t
}()

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
