package drf

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
		want    Result
	}{
		{"absent", nil, "", Anonymous},
		{"empty", []string{""}, "", Anonymous},
		{"only spaces", []string{"   "}, "", Anonymous},
		{"keyword and key", []string{"Token " + validKey}, validKey, Key},
		{"lowercase keyword", []string{"token " + validKey}, validKey, Key},
		{"uppercase keyword", []string{"TOKEN " + validKey}, validKey, Key},
		{"mixed case keyword", []string{"tOkEn " + validKey}, validKey, Key},
		{"tab separator", []string{"Token\t" + validKey}, validKey, Key},
		{"repeated spaces", []string{"Token     " + validKey}, validKey, Key},
		{"vertical tab separator", []string{"Token\x0b" + validKey}, validKey, Key},
		{"form feed separator", []string{"Token\x0c" + validKey}, validKey, Key},
		{"CR LF separator", []string{"Token\r\n" + validKey}, validKey, Key},
		{"leading and trailing whitespace", []string{"   Token " + validKey + "   "}, validKey, Key},
		{"keyword alone", []string{"Token"}, "", NoCredentials},
		{"keyword and a space", []string{"Token "}, "", NoCredentials},
		{"keyword and tabs", []string{"token\t\t"}, "", NoCredentials},
		{"three words", []string{"Token " + validKey + " extra"}, "", Spaces},
		{"latin-1 byte in key", []string{"Token " + validKey + "\xb8"}, "", InvalidChars},
		{"lone continuation byte", []string{"Token \x80"}, "", InvalidChars},
		{"valid non-ASCII key", []string{"Token caf\xc3\xa9"}, "caf\xc3\xa9", Key},
		{"NBSP is not a separator", []string{"Token\xc2\xa0" + validKey}, "", Anonymous},
		{"latin-1 NBSP is not a separator", []string{"Token\xa0" + validKey}, "", Anonymous},
		{"U+0085 is not a separator", []string{"Token\xc2\x85" + validKey}, "", Anonymous},
		{"Bearer scheme", []string{"Bearer " + validKey}, "", Anonymous},
		{"Basic scheme", []string{"Basic YWxpY2U6cGFzcw=="}, "", Anonymous},
		{"keyword prefix", []string{"TokenX " + validKey}, "", Anonymous},
		{"keyword glued to key", []string{"Token" + validKey}, "", Anonymous},
		{"Kelvin sign is not k", []string{"To\u212aen " + validKey}, "", Anonymous},
		{"39-char key is looked up", []string{"Token " + validKey[:39]}, validKey[:39], Key},
		{"41-char key is looked up", []string{"Token " + validKey + "0"}, validKey + "0", Key},
		{"upper-cased key is looked up verbatim", []string{"Token " + strings.ToUpper(validKey)}, strings.ToUpper(validKey), Key},
		{"duplicate headers join to three words", []string{"Token " + validKey, "Token " + validKey}, "", Spaces},
		{"keyword and key in two headers", []string{"Token", validKey}, "", Anonymous},
		{"second header is another scheme", []string{"Token " + validKey, "Bearer x"}, "", Spaces},
		{"empty first header", []string{"", "Token " + validKey}, "", Anonymous},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == Key && referenceHex40(tt.wantKey) {
				want = KeyHex40
			}
			key, res := ParseAuthorization(tt.values, "Token")
			if res != want || key != tt.wantKey {
				t.Errorf("ParseAuthorization(%q) = %q, %d; want %q, %d", tt.values, key, res, tt.wantKey, want)
			}
		})
	}
}

func TestParseAuthorizationCustomKeyword(t *testing.T) {
	if key, res := ParseAuthorization([]string{"bearer abc"}, "Bearer"); res != Key || key != "abc" {
		t.Errorf("Bearer keyword: got %q, %d", key, res)
	}
	if _, res := ParseAuthorization([]string{"Token abc"}, "Bearer"); res != Anonymous {
		t.Errorf("Token under Bearer keyword: got %d, want anonymous", res)
	}
}

func TestParseAuthorizationDoesNotAllocate(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  Result
	}{
		{"Token " + validKey, KeyHex40},        // the one-pass shape
		{"token\t" + validKey + " ", KeyHex40}, // the general way
		{"Token custom-key", Key},
	} {
		values := []string{tt.value}
		allocs := testing.AllocsPerRun(100, func() {
			if _, res := ParseAuthorization(values, "Token"); res != tt.want {
				t.Fatalf("%q: got %d, want %d", tt.value, res, tt.want)
			}
		})
		if allocs != 0 {
			t.Errorf("ParseAuthorization(%q) allocates %v times per call", tt.value, allocs)
		}
	}
}

// referenceParse is DRF's algorithm written as plainly as possible, on
// bytes: join, bytes.split(), lower, decode.
func referenceParse(values []string, keyword string) (string, Result) {
	raw := []byte(strings.Join(values, ","))
	words := splitPython(raw)
	if len(words) == 0 || !bytes.Equal(lowerASCII(words[0]), lowerASCII([]byte(keyword))) {
		return "", Anonymous
	}
	switch {
	case len(words) == 1:
		return "", NoCredentials
	case len(words) > 2:
		return "", Spaces
	case !utf8.Valid(words[1]):
		return "", InvalidChars
	}
	if referenceHex40(string(words[1])) {
		return string(words[1]), KeyHex40
	}
	return string(words[1]), Key
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
	knoxKey := "app_" + strings.Repeat("0123456789abcdef", 4)
	for _, s := range []string{"Token " + knoxKey, "Token " + knoxKey + "\x7f", "Token " + knoxKey + " x", "Token é" + knoxKey, "Token !~"} {
		f.Add(s, "", "Token")
	}
	f.Fuzz(func(t *testing.T, first, second, keyword string) {
		if !ValidKeyword(keyword) {
			keyword = "Token"
		}
		values := []string{first}
		if second != "" {
			values = append(values, second)
		}
		key, res := ParseAuthorization(values, keyword)
		wantKey, wantRes := referenceParse(values, keyword)
		if key != wantKey || res != wantRes {
			t.Fatalf("ParseAuthorization(%q, %q) = %q, %d; reference says %q, %d", values, keyword, key, res, wantKey, wantRes)
		}
		if res.HasKey() != (wantRes == Key || wantRes == KeyHex40) {
			t.Fatalf("HasKey of %d is %v", res, res.HasKey())
		}
		if IsHex40(wantKey) != referenceHex40(wantKey) {
			t.Fatalf("IsHex40(%q) = %v", wantKey, !referenceHex40(wantKey))
		}
	})
}

// referenceHex40 is the hex40 gate written plainly.
func referenceHex40(k string) bool {
	return len(k) == 40 && strings.Trim(k, "0123456789abcdef") == ""
}

// BenchmarkParseAuthorization: the one-pass shape nearly every request
// has, and a header that takes the general way.
func BenchmarkParseAuthorization(b *testing.B) {
	for _, bb := range []struct{ name, value string }{
		{"hex40", "Token " + validKey},
		{"general", "token\t" + validKey + " "},
		{"knox", "Token app_" + strings.Repeat("0123456789abcdef", 4)},
	} {
		b.Run(bb.name, func(b *testing.B) {
			values := []string{bb.value}
			b.ReportAllocs()
			for b.Loop() {
				if _, res := ParseAuthorization(values, "Token"); !res.HasKey() {
					b.Fatal("not parsed")
				}
			}
		})
	}
}

// IsHex40 agrees with the plain definition on every byte in every position.
func TestIsHex40EveryByteEveryPosition(t *testing.T) {
	for pos := 0; pos < 40; pos++ {
		for b := 0; b < 256; b++ {
			k := []byte(validKey)
			k[pos] = byte(b)
			if got, want := IsHex40(string(k)), referenceHex40(string(k)); got != want {
				t.Fatalf("IsHex40 with byte %#x at %d = %v, want %v", b, pos, got, want)
			}
		}
	}
	for _, k := range []string{"", validKey[:39], validKey + "0", strings.Repeat("f", 40), strings.Repeat("0", 40), strings.Repeat("g", 40)} {
		if got, want := IsHex40(k), referenceHex40(k); got != want {
			t.Errorf("IsHex40(%q) = %v, want %v", k, got, want)
		}
	}
}

// The word-at-a-time checks agree with a byte-at-a-time reading on every
// length and on each byte value in each position.
func TestWordChecksMatchBytewise(t *testing.T) {
	hex := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
		return true
	}
	visible := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x21 || c > 0x7e {
				return false
			}
		}
		return true
	}
	for n := 0; n <= 20; n++ {
		for pos := 0; pos < n; pos++ {
			for b := 0; b < 256; b++ {
				buf := []byte(strings.Repeat("a", n))
				buf[pos] = byte(b)
				s := string(buf)
				if IsLowerHex(s) != hex(s) {
					t.Fatalf("IsLowerHex(%q) = %v", s, IsLowerHex(s))
				}
				if isVisibleASCII(s) != visible(s) {
					t.Fatalf("isVisibleASCII(%q) = %v", s, isVisibleASCII(s))
				}
			}
		}
	}
}
