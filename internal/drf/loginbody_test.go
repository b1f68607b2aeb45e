package drf

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tokenauth/caddy-tokenauth/internal/pyjson"
)

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
		got := pyjson.Unquote([]byte(tt.raw))
		if got != tt.want {
			t.Errorf("pyjson.Unquote(%s) = %q, want %q", tt.raw, got, tt.want)
		}
		if r := firstSurrogate(got); r != tt.surrogate {
			t.Errorf("firstSurrogate(%q) = %X, want %X", got, r, tt.surrogate)
		}
	}
}

func TestPyParseQSIsDjangosQueryDict(t *testing.T) {
	got := parseQS("a=1&a=2&b&c=%41%zz%&d=x+y;e=f&&=g")
	want := map[string][]string{"a": {"1", "2"}, "b": {""}, "c": {"A%zz%"}, "d": {"x y;e=f"}, "": {"g"}}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for k, v := range want {
		if strings.Join(got[k], "|") != strings.Join(v, "|") {
			t.Errorf("%q: got %q, want %q", k, got[k], v)
		}
	}
	if v := parseQS("u=%ff")["u"][0]; v != "\uFFFD" {
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
		{"multipart/form-data; boundary=xx", "--xx\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\n\xffb\xe2\x82\r\n--xx\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n\xed\xa0\x80\r\n--xx--\r\n"},
		{"application/x-www-form-urlencoded", "username=\xff%E2%82&password=%ED%A0%80"},
		{"application/json", "{\"username\":\"a\",\"password\":\"b\"}\xe2\x82"},
		{"text/plain", "hello"},
		{"", "x"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, ct, body string) {
		r := httptest.NewRequest("POST", "/login", strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		p := ParseLoginBody(r, []byte(body))
		if p.Status != 0 || p.NonField != "" {
			return
		}
		u, uerr := p.Username.Validate(true)
		pw, pwerr := p.Password.Validate(false)
		if uerr == nil {
			if u == "" || pyStrip(u) != u {
				t.Fatalf("validated username %q", u)
			}
			if !utf8.ValidString(u) {
				t.Fatalf("validated username %q is not valid UTF-8", u)
			}
		}
		if pwerr == nil && !utf8.ValidString(pw) {
			t.Fatalf("validated password %q is not valid UTF-8", pw)
		}
	})
}

// pyReplaceCases are Python's bytes.decode("utf-8", "replace") (CPython
// 3.11): each maximal subpart of an ill-formed sequence becomes one U+FFFD,
// so a truncated but well-begun sequence ("\xe2\x82") is one, while bytes
// that can start no sequence ("\xc0", "\xf5", a stray continuation) and
// the bytes after a lead they cannot follow ("\xe0\x80", "\xed\xa0",
// "\xf0\x8f", "\xf4\x90") are one each.
var pyReplaceCases = []struct{ in, want string }{
	{"", ""},
	{"alice", "alice"},
	{"\xffalice", "\uFFFDalice"},
	{"\xff\xfe", "\uFFFD\uFFFD"},
	{"\xe2\x82", "\uFFFD"},
	{"\xe2\x82x", "\uFFFDx"},
	{"\xe2\x82\xac", "€"},
	{"\xe2\x82\xe2\x82\xac", "\uFFFD€"},
	{"\xf0\x9f\x98", "\uFFFD"},
	{"\xf0\x9f\x98x", "\uFFFDx"},
	{"\xf0\x9f", "\uFFFD"},
	{"\xf0", "\uFFFD"},
	{"\xf0\x9f\x98\x80", "😀"},
	{"\xc0\xaf", "\uFFFD\uFFFD"},
	{"\xc1\xbf", "\uFFFD\uFFFD"},
	{"\xc2", "\uFFFD"},
	{"\xc2x", "\uFFFDx"},
	{"\xc3\xa9", "é"},
	{"\xe0\x80\x80", "\uFFFD\uFFFD\uFFFD"},
	{"\xe0\x9f\xbf", "\uFFFD\uFFFD\uFFFD"},
	{"\xe0\xa0\x80", "\u0800"},
	{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
	{"\xed\x9f\xbf", "\uD7FF"},
	{"\xed\xbf\xbf", "\uFFFD\uFFFD\uFFFD"},
	{"\xed\xa0", "\uFFFD\uFFFD"},
	{"\xed", "\uFFFD"},
	{"\xf0\x80\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
	{"\xf0\x8f\xbf\xbf", "\uFFFD\uFFFD\uFFFD\uFFFD"},
	{"\xf4\x8f\xbf\xbf", "\U0010FFFF"},
	{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
	{"\xf5\x80\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
	{"\xf8\x88\x80\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD"},
	{"\x80", "\uFFFD"},
	{"\x80\xbf", "\uFFFD\uFFFD"},
	{"a\x80b", "a\uFFFDb"},
	{"\xef\xbf\xbd", "\uFFFD"},
	{"\xe1\x80\xc2\x80", "\uFFFD\u0080"},
	{"\xf1\x80\x80", "\uFFFD"},
	{"\xf1\x80\x80\xe1\x80", "\uFFFD\uFFFD"},
	{"\xfe", "\uFFFD"},
	{"\x00\xff\x00", "\x00\uFFFD\x00"},
}

// rawMultipart is a multipart/form-data body with the given parts, raw:
// each name is written between quotes as it is.
func rawMultipart(parts ...string) (contentType, body string) {
	var b strings.Builder
	for i := 0; i+1 < len(parts); i += 2 {
		b.WriteString("--xx\r\nContent-Disposition: form-data; name=\"" + parts[i] + "\"\r\n\r\n" + parts[i+1] + "\r\n")
	}
	b.WriteString("--xx--\r\n")
	return "multipart/form-data; boundary=xx", b.String()
}

func parseBody(ct, body string) LoginBody {
	r := httptest.NewRequest("POST", "/login", strings.NewReader(body))
	r.Header.Set("Content-Type", ct)
	return ParseLoginBody(r, []byte(body))
}

// Django decodes multipart values and percent-decoded form values with
// errors="replace" (MultiPartParser's force_str, parse_qsl's unquote): the
// fields are valid UTF-8, U+FFFD per maximal subpart, as in Python.
func TestFormAndMultipartValuesDecodeAsPython(t *testing.T) {
	for _, tt := range pyReplaceCases {
		ct, body := rawMultipart("username", tt.in, "password", "pw"+tt.in)
		p := parseBody(ct, body)
		if p.Status != 0 || p.Username.value != tt.want || p.Password.value != "pw"+tt.want {
			t.Errorf("multipart %q: status %d %q, username %q, password %q; want %q", tt.in, p.Status, p.Detail, p.Username.value, p.Password.value, tt.want)
		}

		var enc strings.Builder
		for i := 0; i < len(tt.in); i++ {
			fmt.Fprintf(&enc, "%%%02X", tt.in[i])
		}
		p = parseBody("application/x-www-form-urlencoded", "username="+enc.String()+"&password=pw"+enc.String())
		if p.Status != 0 || p.Username.value != tt.want || p.Password.value != "pw"+tt.want {
			t.Errorf("urlencoded %q: status %d, username %q, password %q; want %q", enc.String(), p.Status, p.Username.value, p.Password.value, tt.want)
		}
	}
}

// A multipart field name is decoded with errors="replace" too, so a name
// with invalid UTF-8 is never "username" or "password": the part is
// ignored, as by Django, and the form still parses.
func TestMultipartNameWithInvalidUTF8IsAnotherField(t *testing.T) {
	for _, name := range []string{"\xffusername", "username\xff", "user\xe2\x82name", "\xc0password"} {
		ct, body := rawMultipart(name, "alice", "username", "bob", "password", "pw", name, "carol")
		p := parseBody(ct, body)
		if p.Status != 0 || p.Username.value != "bob" || p.Password.value != "pw" {
			t.Errorf("name %q: status %d %q, username %+v, password %+v", name, p.Status, p.Detail, p.Username, p.Password)
		}
	}
}

// Django's QueryDict decodes a form body that is not valid UTF-8 as
// ISO-8859-1 instead (each byte one code point), then percent-decodes each
// run of ASCII characters as UTF-8 with errors="replace"; the other
// characters stay as they are. Expectations from Django 3.2's QueryDict.
func TestPyParseQSDecodesAsQueryDict(t *testing.T) {
	tests := []struct{ body, key, want string }{
		{"u=%ff", "u", "\uFFFD"},
		{"u=%FF%FE", "u", "\uFFFD\uFFFD"},
		{"u=%E2%82", "u", "\uFFFD"},
		{"u=%E2%82x", "u", "\uFFFDx"},
		{"u=%e2%82%ac", "u", "€"},
		{"u=\xffalice", "u", "ÿalice"},
		{"u=\xc3\xa9%C3%A9", "u", "éé"},
		{"u=\xc3\xa9\xff%C3%A9", "u", "Ã©ÿé"},
		{"u=%C3\xc3\xa9%A9", "u", "\uFFFDé\uFFFD"},
		{"u=%E2\xe2\x82\xac%82%AC", "u", "\uFFFD€\uFFFD\uFFFD"},
		{"%FFu=%FE", "\uFFFDu", "\uFFFD"},
		{"u=%ED%A0%80", "u", "\uFFFD\uFFFD\uFFFD"},
		{"u=%F0%9F%98", "u", "\uFFFD"},
		{"u=\xe2\x82", "u", "â\u0082"},
		{"u=a+%2B%ZZ%", "u", "a +%ZZ%"},
		{"u=%C3\xa9", "u", "\uFFFD©"},
	}
	for _, tt := range tests {
		got := parseQS(tt.body)
		if len(got) != 1 || len(got[tt.key]) != 1 || got[tt.key][0] != tt.want {
			t.Errorf("parseQS(%q) = %q, want %q: [%q]", tt.body, got, tt.key, tt.want)
		}
	}
}

// DRF's JSONParser reads through codecs' incremental UTF-8 decoder, which
// drops a truncated sequence at the very end of the body: the JSON before
// it parses as usual.
func TestJSONBodyWithTruncatedTail(t *testing.T) {
	for _, tail := range []string{"\xe2", " \xf0\x9f\x98", "\xed\xa0", "\xc3"} {
		p := parseBody("application/json", `{"username":"alice","password":"pw"}`+tail)
		if p.Status != 0 || p.NonField != "" || p.Username.value != "alice" || p.Password.value != "pw" {
			t.Errorf("tail %q: %+v", tail, p)
		}
	}
	// Elsewhere invalid UTF-8 is DRF's parse error.
	p := parseBody("application/json", "{\"username\":\"\xffalice\",\"password\":\"pw\"}")
	if want := "JSON parse error - 'utf-8' codec can't decode byte 0xff in position 13: invalid start byte"; p.Status != 400 || p.Detail != want {
		t.Errorf("invalid UTF-8 in a string: %d %q, want 400 %q", p.Status, p.Detail, want)
	}
}
