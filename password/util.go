package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"strconv"
)

// parseUint reads a canonical decimal number (ASCII digits, no sign, no
// leading zero) between 1 and max. Django writes numbers with %d, so any
// other spelling cannot match a re-encoded value.
func parseUint(s string, max uint64) (uint64, bool) {
	if s == "" || len(s) > 20 || s[0] == '0' {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > max/10 {
			return 0, false
		}
		n *= 10
		d := uint64(c - '0')
		if d > max-n {
			return 0, false
		}
		n += d
	}
	return n, true
}

// secretsEqual is how every hasher compares what it derived from a
// password with what is stored: in constant time, so that the time taken
// does not tell how much of the stored secret a guess got right. A variable
// so that a test can see that each hasher's verify goes through it.
var secretsEqual = constantTimeEqual

func constantTimeEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

func itoa(n int) string { return strconv.Itoa(n) }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isBase64Chars reports whether s holds only characters of the standard
// base64 alphabet, without padding (Go's decoder would skip CR and LF).
func isBase64Chars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

func randomKeyB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
