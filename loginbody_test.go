package tokenauth

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPyNumberIsPythonStr(t *testing.T) {
	tests := map[string]string{
		"0": "0", "-0": "0", "123": "123", "-7": "-7",
		"123456789012345678901234567890": "123456789012345678901234567890",
		"1.0":                            "1.0", "1.5": "1.5", "-0.0": "-0.0", "1e5": "100000.0", "1E5": "100000.0",
		"1e16": "1e+16", "1.5e-7": "1.5e-07", "0.0001": "0.0001", "0.00001": "1e-05",
		"123456789.123": "123456789.123", "1e400": "inf", "-1e400": "-inf", "2.5e+300": "2.5e+300",
	}
	for in, want := range tests {
		if got := pyNumber(json.Number(in)); got != want {
			t.Errorf("pyNumber(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestPyUnquoteKeepsLoneSurrogates(t *testing.T) {
	tests := []struct {
		raw       string
		want      string
		surrogate rune
	}{
		{`"plain"`, "plain", -1},
		{`"a\"b\\c\/d\b\f\n\r\t"`, "a\"b\\c/d\b\f\n\r\t", -1},
		{`"caf\u00e9"`, "café", -1},
		{`"\ud83d\ude00"`, "😀", -1},
		{`"x\ud800"`, "x\xed\xa0\x80", 0xD800},
		{`"\udfff\ud800"`, "\xed\xbf\xbf\xed\xa0\x80", 0xDFFF},
		{`"\ud800\u0041"`, "\xed\xa0\x80A", 0xD800},
	}
	for _, tt := range tests {
		got := pyUnquote([]byte(tt.raw))
		if got != tt.want {
			t.Errorf("pyUnquote(%s) = %q, want %q", tt.raw, got, tt.want)
		}
		if r := firstSurrogate(got); r != tt.surrogate {
			t.Errorf("firstSurrogate(%q) = %X, want %X", got, r, tt.surrogate)
		}
	}
}

func TestPyParseQSIsDjangosQueryDict(t *testing.T) {
	got := pyParseQS("a=1&a=2&b&c=%41%zz%&d=x+y;e=f&&=g")
	want := map[string][]string{"a": {"1", "2"}, "b": {""}, "c": {"A%zz%"}, "d": {"x y;e=f"}, "": {"g"}}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for k, v := range want {
		if strings.Join(got[k], "|") != strings.Join(v, "|") {
			t.Errorf("%q: got %q, want %q", k, got[k], v)
		}
	}
	if v := pyParseQS("u=%ff")["u"][0]; v != "\uFFFD" {
		t.Errorf("invalid UTF-8 gives %q", v)
	}
}

func TestPyStripIsUnicodeAware(t *testing.T) {
	if got := pyStrip("\u00a0\u2003\x1c alice \u3000\x1f"); got != "alice" {
		t.Errorf("got %q", got)
	}
	if got := pyStrip("\u200balice"); got != "\u200balice" { // ZERO WIDTH SPACE is not whitespace in Python
		t.Errorf("got %q", got)
	}
}

// FuzzParseLoginBody: any body under any media type is answered without a
// panic, and a validated username is valid text without surrounding space.
func FuzzParseLoginBody(f *testing.F) {
	for _, seed := range [][2]string{
		{"application/json", `{"username":"alice","password":"pw"}`},
		{"application/json", `{"username":"a\ud800","password":["x"]}`},
		{"application/json", `[1,2]`},
		{"application/json", `{"username":1e400,"password":null}`},
		{"application/x-www-form-urlencoded", "username=%zz&password=a+b"},
		{"multipart/form-data; boundary=xx", "--xx\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nbob\r\n--xx--\r\n"},
		{"text/plain", "hello"},
		{"", "x"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, ct, body string) {
		r := httptest.NewRequest("POST", "/login", strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		p := parseLoginBody(r, []byte(body))
		if p.status != 0 || p.nonField != "" {
			return
		}
		u, uerr := p.username.validate(true)
		p.password.validate(false)
		if uerr == nil {
			if u == "" || pyStrip(u) != u {
				t.Fatalf("validated username %q", u)
			}
			if firstSurrogate(u) < 0 && !utf8.ValidString(u) && strings.HasPrefix(ct, "application/json") {
				t.Fatalf("JSON username %q is not valid UTF-8", u)
			}
		}
	})
}
