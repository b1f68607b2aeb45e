package drf

import (
	"strings"
	"unicode/utf8"
)

// BasicResult is what ParseBasic makes of an Authorization header.
type BasicResult uint8

const (
	// BasicNone: no Basic credentials (no header, another scheme).
	BasicNone BasicResult = iota
	// BasicOK: a user id and a password were decoded.
	BasicOK
	// BasicNoCredentials: "Basic" alone.
	BasicNoCredentials
	// BasicSpaces: more than one word after "Basic".
	BasicSpaces
	// BasicBadBase64: the credentials are not base64 as Python decodes it.
	BasicBadBase64
)

// BasicChallenge is what DRF's BasicAuthentication sends in
// WWW-Authenticate (www_authenticate_realm = 'api').
const BasicChallenge = `Basic realm="api"`

// Err is DRF's refusal of a malformed Basic header, or nil.
func (r BasicResult) Err() *Error {
	switch r {
	case BasicNoCredentials:
		return ErrBasicNoCredentials
	case BasicSpaces:
		return ErrBasicSpaces
	case BasicBadBase64:
		return ErrBasicBase64
	}
	return nil
}

// ParseBasic reads the Authorization header values as DRF's
// BasicAuthentication.authenticate does: the header split as for tokens,
// the keyword "basic" ASCII-case-insensitively, then the credentials
// decoded by Python's base64.b64decode (lenient: bytes outside the
// alphabet are skipped, a complete padding ends the data), read as UTF-8,
// or as Latin-1 when they are not valid UTF-8, and split at the first
// colon (a missing colon gives an empty password).
func ParseBasic(values []string) (userid, password string, res BasicResult) {
	s := strings.Join(values, ",")
	word, rest := nextWord(s)
	if word == "" || !asciiEqualFold(word, "basic") {
		return "", "", BasicNone
	}
	cred, rest := nextWord(rest)
	if cred == "" {
		return "", "", BasicNoCredentials
	}
	if extra, _ := nextWord(rest); extra != "" {
		return "", "", BasicSpaces
	}
	raw, ok := pyB64Decode(cred)
	if !ok {
		return "", "", BasicBadBase64
	}
	decoded := string(raw)
	if !utf8.Valid(raw) {
		decoded = latin1(raw)
	}
	userid, password, _ = strings.Cut(decoded, ":")
	return userid, password, BasicOK
}

// latin1 decodes bytes as ISO-8859-1: each byte is the code point.
func latin1(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

// pyB64Decode is binascii.a2b_base64(s, strict_mode=False) of CPython 3.11
// and 3.12, which base64.b64decode(s) calls: bytes outside the alphabet
// are skipped; "=" counts as padding only once two data characters of a
// quad are in, and the padding that completes a quad ends the data (what
// follows is ignored); an unfinished quad at the end is an error.
func pyB64Decode(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s)/4*3+3)
	quadPos, pads := 0, 0
	var left byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' {
			if quadPos >= 2 {
				pads++
				if quadPos+pads >= 4 {
					return out, true
				}
			}
			continue
		}
		v := b64Value(c)
		if v >= 64 {
			continue
		}
		pads = 0
		switch quadPos {
		case 0:
			quadPos, left = 1, v
		case 1:
			quadPos = 2
			out = append(out, left<<2|v>>4)
			left = v & 0x0f
		case 2:
			quadPos = 3
			out = append(out, left<<4|v>>2)
			left = v & 0x03
		default:
			quadPos = 0
			out = append(out, left<<6|v)
			left = 0
		}
	}
	return out, quadPos == 0
}

// b64Value is the value of a character of the standard base64 alphabet,
// or 64 for any other byte.
func b64Value(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A'
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26
	case '0' <= c && c <= '9':
		return c - '0' + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return 64
}
