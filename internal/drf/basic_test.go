package drf

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseBasic(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	cases := []struct {
		name     string
		values   []string
		user, pw string
		res      BasicResult
	}{
		{"no header", nil, "", "", BasicNone},
		{"a token header", []string{"Token abc"}, "", "", BasicNone},
		{"keyword any case", []string{"bAsIc " + b64([]byte("ann:pw"))}, "ann", "pw", BasicOK},
		{"alone", []string{"Basic"}, "", "", BasicNoCredentials},
		{"alone with spaces", []string{"  Basic \t "}, "", "", BasicNoCredentials},
		{"two words", []string{"Basic a b"}, "", "", BasicSpaces},
		{"password keeps its colons", []string{"Basic " + b64([]byte("ann:a:b:"))}, "ann", "a:b:", BasicOK},
		{"no colon: empty password", []string{"Basic " + b64([]byte("ann"))}, "ann", "", BasicOK},
		{"latin-1 when not UTF-8", []string{"Basic " + b64([]byte("\xe9:\xff"))}, "é", "ÿ", BasicOK},
		{"UTF-8 kept", []string{"Basic " + b64([]byte("é:ü"))}, "é", "ü", BasicOK},
		{"bad padding", []string{"Basic YW5u"[:9]}, "", "", BasicBadBase64},
		{"one char over a quad", []string{"Basic YW5uO"}, "", "", BasicBadBase64},
		{"junk skipped", []string{"Basic YW5u!OnB3"}, "ann", "pw", BasicOK},
		{"data after padding ignored", []string{"Basic YW4=OnB3"}, "an", "", BasicOK},
		{"lines joined with a comma: not the keyword", []string{"Basic", "x"}, "", "", BasicNone},
		{"a second line joins the credentials", []string{"Basic YW5u", "OnB3"}, "ann", "pw", BasicOK},
	}
	for _, c := range cases {
		u, p, res := ParseBasic(c.values)
		if u != c.user || p != c.pw || res != c.res {
			t.Errorf("%s: ParseBasic(%q) = %q, %q, %v; want %q, %q, %v", c.name, c.values, u, p, res, c.user, c.pw, c.res)
		}
	}
	if ErrBasicBase64 != BasicBadBase64.Err() || BasicOK.Err() != nil || BasicNoCredentials.Err() != ErrBasicNoCredentials || BasicSpaces.Err() != ErrBasicSpaces {
		t.Error("BasicResult.Err gives the wrong refusal")
	}
}

// pyB64 is Debian's CPython, which the integration tests' DRF runs on.
const pyB64 = `
import base64, json, sys
out = []
for s in json.load(sys.stdin):
    b = bytes(s, "latin-1")
    try:
        out.append([True, base64.b64decode(b).decode("latin-1")])
    except Exception:
        out.append([False, ""])
json.dump(out, sys.stdout)
`

// TestPyB64DecodeMatchesCPython compares the decoder with Python's
// base64.b64decode on random strings over the characters that matter.
func TestPyB64DecodeMatchesCPython(t *testing.T) {
	py, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("/usr/bin/python3 is needed: %v", err)
		}
		t.Skip("no /usr/bin/python3")
	}
	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	alphabet := "AAQgwz09+/=!-_ \x80\xff"
	var in []string
	for range 20000 {
		b := make([]byte, r.IntN(13))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		in = append(in, string(b))
	}
	src, _ := json.Marshal(latin1Strings(in))
	cmd := exec.Command(py, "-c", pyB64)
	cmd.Stdin = bytes.NewReader(src)
	raw, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var want [][2]any
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	for i, s := range in {
		got, ok := pyB64Decode(s)
		if ok != want[i][0].(bool) || (ok && latin1(got) != want[i][1].(string)) {
			t.Fatalf("b64decode(%q): Go %v %q, Python %v %q", s, ok, got, want[i][0], want[i][1])
		}
	}
}

func latin1Strings(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = latin1([]byte(s))
	}
	return out
}

func TestFormatDateTimeIsDRFs(t *testing.T) {
	chicago := time.FixedZone("CST", -6*3600)
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 12, 1, 19, 2, 44, 454098000, time.UTC), "2026-12-01T19:02:44.454098Z"},
		{time.Date(2026, 12, 1, 19, 2, 44, 454098999, time.UTC), "2026-12-01T19:02:44.454098Z"},
		{time.Date(2026, 12, 1, 19, 2, 44, 0, time.UTC), "2026-12-01T19:02:44Z"},
		{time.Date(2026, 12, 1, 19, 2, 44, 999, time.UTC), "2026-12-01T19:02:44Z"},
		{time.Date(2026, 12, 1, 13, 2, 44, 1000, chicago), "2026-12-01T19:02:44.000001Z"},
	} {
		if got := FormatDateTime(c.t); got != c.want {
			t.Errorf("FormatDateTime(%v) = %s, want %s", c.t, got, c.want)
		}
	}
}
