package tokenauth

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

const validKey = "401f7ac837da42b97f613d789819ff93537bee6a"

// The header cases of the DRF reference (§1.6), as DRF answers them.
func TestParseAuthorizationFollowsDRF(t *testing.T) {
	tests := []struct {
		name    string
		values  []string
		wantKey string
		want    headerResult
	}{
		{"absent", nil, "", headerAnonymous},
		{"empty", []string{""}, "", headerAnonymous},
		{"only spaces", []string{"   "}, "", headerAnonymous},
		{"keyword and key", []string{"Token " + validKey}, validKey, headerKey},
		{"lowercase keyword", []string{"token " + validKey}, validKey, headerKey},
		{"uppercase keyword", []string{"TOKEN " + validKey}, validKey, headerKey},
		{"mixed case keyword", []string{"tOkEn " + validKey}, validKey, headerKey},
		{"tab separator", []string{"Token\t" + validKey}, validKey, headerKey},
		{"repeated spaces", []string{"Token     " + validKey}, validKey, headerKey},
		{"vertical tab separator", []string{"Token\x0b" + validKey}, validKey, headerKey},
		{"form feed separator", []string{"Token\x0c" + validKey}, validKey, headerKey},
		{"CR LF separator", []string{"Token\r\n" + validKey}, validKey, headerKey},
		{"leading and trailing whitespace", []string{"   Token " + validKey + "   "}, validKey, headerKey},
		{"keyword alone", []string{"Token"}, "", headerNoCredentials},
		{"keyword and a space", []string{"Token "}, "", headerNoCredentials},
		{"keyword and tabs", []string{"token\t\t"}, "", headerNoCredentials},
		{"three words", []string{"Token " + validKey + " extra"}, "", headerSpaces},
		{"latin-1 byte in key", []string{"Token " + validKey + "\xb8"}, "", headerInvalidChars},
		{"lone continuation byte", []string{"Token \x80"}, "", headerInvalidChars},
		{"valid non-ASCII key", []string{"Token caf\xc3\xa9"}, "caf\xc3\xa9", headerKey},
		{"NBSP is not a separator", []string{"Token\xc2\xa0" + validKey}, "", headerAnonymous},
		{"latin-1 NBSP is not a separator", []string{"Token\xa0" + validKey}, "", headerAnonymous},
		{"U+0085 is not a separator", []string{"Token\xc2\x85" + validKey}, "", headerAnonymous},
		{"Bearer scheme", []string{"Bearer " + validKey}, "", headerAnonymous},
		{"Basic scheme", []string{"Basic YWxpY2U6cGFzcw=="}, "", headerAnonymous},
		{"keyword prefix", []string{"TokenX " + validKey}, "", headerAnonymous},
		{"keyword glued to key", []string{"Token" + validKey}, "", headerAnonymous},
		{"Kelvin sign is not k", []string{"To\u212aen " + validKey}, "", headerAnonymous},
		{"39-char key is looked up", []string{"Token " + validKey[:39]}, validKey[:39], headerKey},
		{"41-char key is looked up", []string{"Token " + validKey + "0"}, validKey + "0", headerKey},
		{"upper-cased key is looked up verbatim", []string{"Token " + strings.ToUpper(validKey)}, strings.ToUpper(validKey), headerKey},
		{"duplicate headers join to three words", []string{"Token " + validKey, "Token " + validKey}, "", headerSpaces},
		{"keyword and key in two headers", []string{"Token", validKey}, "", headerAnonymous},
		{"second header is another scheme", []string{"Token " + validKey, "Bearer x"}, "", headerSpaces},
		{"empty first header", []string{"", "Token " + validKey}, "", headerAnonymous},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, res := parseAuthorization(tt.values, "Token")
			if res != tt.want || key != tt.wantKey {
				t.Errorf("parseAuthorization(%q) = %q, %d; want %q, %d", tt.values, key, res, tt.wantKey, tt.want)
			}
		})
	}
}

func TestParseAuthorizationCustomKeyword(t *testing.T) {
	if key, res := parseAuthorization([]string{"bearer abc"}, "Bearer"); res != headerKey || key != "abc" {
		t.Errorf("Bearer keyword: got %q, %d", key, res)
	}
	if _, res := parseAuthorization([]string{"Token abc"}, "Bearer"); res != headerAnonymous {
		t.Errorf("Token under Bearer keyword: got %d, want anonymous", res)
	}
}

func TestParseAuthorizationDoesNotAllocate(t *testing.T) {
	values := []string{"Token " + validKey}
	allocs := testing.AllocsPerRun(100, func() {
		if _, res := parseAuthorization(values, "Token"); res != headerKey {
			t.Fatal("not parsed")
		}
	})
	if allocs != 0 {
		t.Errorf("parseAuthorization allocates %v times per call", allocs)
	}
}

// referenceParse is DRF's algorithm written as plainly as possible, on
// bytes: join, bytes.split(), lower, decode.
func referenceParse(values []string, keyword string) (string, headerResult) {
	raw := []byte(strings.Join(values, ","))
	words := splitPython(raw)
	if len(words) == 0 || !bytes.Equal(lowerASCII(words[0]), lowerASCII([]byte(keyword))) {
		return "", headerAnonymous
	}
	switch {
	case len(words) == 1:
		return "", headerNoCredentials
	case len(words) > 2:
		return "", headerSpaces
	case !utf8.Valid(words[1]):
		return "", headerInvalidChars
	}
	return string(words[1]), headerKey
}

// splitPython is Python's bytes.split() with no argument.
func splitPython(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i, c := range b {
		ws := c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x0b' || c == '\x0c'
		switch {
		case ws && start >= 0:
			out = append(out, b[start:i])
			start = -1
		case !ws && start < 0:
			start = i
		}
	}
	if start >= 0 {
		out = append(out, b[start:])
	}
	return out
}

func lowerASCII(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"", "Token", "Token abc", "token\tabc def", "Token\xc2\xa0abc", "Token \xb8", " TOKEN  x ", "Bearer x"} {
		f.Add(s, "", "Token")
	}
	f.Add("Token a", "Token b", "Token")
	for _, s := range []string{"Token " + validKey, "tOKEN " + validKey, "Token\t" + validKey, "Token " + validKey + " ", " Token " + validKey, "Token " + strings.ToUpper(validKey), "Token " + validKey[:39] + "g"} {
		f.Add(s, "", "Token")
	}
	f.Add("Token "+validKey, "Token "+validKey, "Token")
	f.Add("Bearer a", "", "bearer")
	f.Fuzz(func(t *testing.T, first, second, keyword string) {
		if keyword == "" || validKeyword(keyword) != nil {
			keyword = "Token"
		}
		values := []string{first}
		if second != "" {
			values = append(values, second)
		}
		key, res := parseAuthorization(values, keyword)
		wantKey, wantRes := referenceParse(values, keyword)
		if key != wantKey || res != wantRes {
			t.Fatalf("parseAuthorization(%q, %q) = %q, %d; reference says %q, %d", values, keyword, key, res, wantKey, wantRes)
		}
		// The fast path answers only what the general one answers, and
		// only for keys that pass the hex40 gate.
		plain := wantRes == headerKey && referenceHex40(wantKey) && len(values) == 1 &&
			len(values[0]) == len(keyword)+1+40 && values[0][len(keyword)] == ' '
		if fast, ok := hexKey(values, keyword); ok != plain || (ok && fast != wantKey) {
			t.Fatalf("hexKey(%q, %q) = %q, %v; want the key only for the plain shape of a hex key %q", values, keyword, fast, ok, wantKey)
		}
		if isHex40(wantKey) != referenceHex40(wantKey) {
			t.Fatalf("isHex40(%q) = %v", wantKey, !referenceHex40(wantKey))
		}
	})
}

// referenceHex40 is the hex40 gate written plainly.
func referenceHex40(k string) bool {
	return len(k) == 40 && strings.Trim(k, "0123456789abcdef") == ""
}
