package pyjson

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// cases: expected messages generated once with DRF 3.14's JSONParser
// on Debian's CPython 3.11 (see oracleScript); "" means accepted.
var cases = []struct{ name, in, want string }{
	{"object", "{\"username\": \"alice\", \"password\": \"s3cret\"}", ""},
	{"array of every kind", "[1, 2.5, -3e10, \"x\", true, false, null, {}, []]", ""},
	{"nested with escapes", "{\"a\": [{\"b\": {\"c\": [null]}}], \"d\": \"\\u00e9\\n\\t\\\"\\\\\\/\\b\\f\\r\"}", ""},
	{"string top level", "\"hello\"", ""},
	{"number top level", "-0.5E+3", ""},
	{"zero", "0", ""},
	{"surrogate pair escape", "\"\\ud83d\\ude00\"", ""},
	{"lone high surrogate escape", "\"\\ud800\"", ""},
	{"lone low surrogate escapes", "[\"\\udc00\", \"\\ud800x\"]", ""},
	{"high surrogate then non-low", "\"\\ud800\\u0041\"", ""},
	{"raw non-ascii", "{\"name\": \"Zo\xc3\xab \xf0\x9f\x98\x80\"}", ""},
	{"leading and trailing whitespace", " \t\r\n {\"a\":1} \n\t", ""},
	{"empty", "", "Expecting value: line 1 column 1 (char 0)"},
	{"whitespace only", "  \t\r\n ", "Expecting value: line 2 column 2 (char 6)"},
	{"form feed is not whitespace", "{\"a\":1}\x0c", "Extra data: line 1 column 8 (char 7)"},
	{"vertical tab is not whitespace", "\x0b{}", "Expecting value: line 1 column 1 (char 0)"},
	{"nbsp is not whitespace", "\xc2\xa0{}", "Expecting value: line 1 column 1 (char 0)"},
	{"single quotes", "{'username': 'alice'}", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"},
	{"unquoted key", "{username: \"alice\"}", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"},
	{"trailing comma object", "{\"a\": 1,}", "Expecting property name enclosed in double quotes: line 1 column 9 (char 8)"},
	{"trailing comma array", "[1, 2,]", "Expecting value: line 1 column 7 (char 6)"},
	{"trailing comma array newline", "[1,\n]", "Expecting value: line 2 column 1 (char 4)"},
	{"comma only array", "[,]", "Expecting value: line 1 column 2 (char 1)"},
	{"missing colon", "{\"a\" 1}", "Expecting ':' delimiter: line 1 column 6 (char 5)"},
	{"missing comma object", "{\"a\": 1 \"b\": 2}", "Expecting ',' delimiter: line 1 column 9 (char 8)"},
	{"missing comma array", "[1 2]", "Expecting ',' delimiter: line 1 column 4 (char 3)"},
	{"unclosed object", "{\"a\": 1", "Expecting ',' delimiter: line 1 column 8 (char 7)"},
	{"unclosed array", "[1, 2", "Expecting ',' delimiter: line 1 column 6 (char 5)"},
	{"open brace only", "{", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"},
	{"key then eof", "{\"a\"", "Expecting ':' delimiter: line 1 column 5 (char 4)"},
	{"colon then eof", "{\"a\":", "Expecting value: line 1 column 6 (char 5)"},
	{"comma then eof", "[1,", "Expecting value: line 1 column 4 (char 3)"},
	{"extra data", "{\"a\": 1} {\"b\": 2}", "Extra data: line 1 column 10 (char 9)"},
	{"extra data after whitespace", "[]  x", "Extra data: line 1 column 5 (char 4)"},
	{"extra closer", "{}}", "Extra data: line 1 column 3 (char 2)"},
	{"lone closer", "]", "Expecting value: line 1 column 1 (char 0)"},
	{"line comment", "{\"a\": 1 // c\n}", "Expecting ',' delimiter: line 1 column 9 (char 8)"},
	{"block comment", "/* c */ {}", "Expecting value: line 1 column 1 (char 0)"},
	{"unterminated string", "{\"username\": \"alice", "Unterminated string starting at: line 1 column 14 (char 13)"},
	{"unterminated after escaped quote", "\"abc\\\"", "Unterminated string starting at: line 1 column 1 (char 0)"},
	{"backslash at end", "\"abc\\", "Unterminated string starting at: line 1 column 1 (char 0)"},
	{"control char in string", "{\"a\": \"x\x01y\"}", "Invalid control character at: line 1 column 9 (char 8)"},
	{"raw tab in string", "[\"a\tb\"]", "Invalid control character at: line 1 column 4 (char 3)"},
	{"raw newline in string", "{\"a\": \"line1\nline2\"}", "Invalid control character at: line 1 column 13 (char 12)"},
	{"del in string is fine", "\"a\x7fb\"", ""},
	{"invalid escape", "{\"a\": \"\\x41\"}", "Invalid \\escape: line 1 column 8 (char 7)"},
	{"escaped single quote", "\"\\'\"", "Invalid \\escape: line 1 column 2 (char 1)"},
	{"short unicode escape", "\"\\u12\"", "Invalid \\uXXXX escape: line 1 column 3 (char 2)"},
	{"bad hex in unicode escape", "\"\\u12g4\"", "Invalid \\uXXXX escape: line 1 column 3 (char 2)"},
	{"bad second surrogate escape", "\"\\ud800\\uzzzz\"", "Invalid \\uXXXX escape: line 1 column 9 (char 8)"},
	{"unicode escape at end", "\"\\u1234", "Invalid \\uXXXX escape: line 1 column 3 (char 2)"},
	{"leading zero", "01", "Extra data: line 1 column 2 (char 1)"},
	{"negative leading zero", "-01", "Extra data: line 1 column 3 (char 2)"},
	{"minus only", "-", "Expecting value: line 1 column 1 (char 0)"},
	{"minus space digit", "- 1", "Expecting value: line 1 column 1 (char 0)"},
	{"trailing dot", "1.", "Extra data: line 1 column 2 (char 1)"},
	{"leading dot", ".5", "Expecting value: line 1 column 1 (char 0)"},
	{"exponent without digits", "1e", "Extra data: line 1 column 2 (char 1)"},
	{"exponent sign without digits", "[1e+]", "Expecting ',' delimiter: line 1 column 3 (char 2)"},
	{"double minus", "--1", "Expecting value: line 1 column 1 (char 0)"},
	{"plus sign", "+1", "Expecting value: line 1 column 1 (char 0)"},
	{"hex number", "0x10", "Extra data: line 1 column 2 (char 1)"},
	{"big int", "123456789012345678901234567890", ""},
	{"huge float", "1e400", ""},
	{"int of 4300 digits", strings.Repeat("9", 4300), ""},
	{"int of 4301 digits", "[-" + strings.Repeat("9", 4301) + "]", "Exceeds the limit (4300 digits) for integer string conversion: value has 4301 digits; use sys.set_int_max_str_digits() to increase the limit"},
	{"float of 5000 digits", "1." + strings.Repeat("0", 5000), ""},
	{"NaN", "NaN", "Out of range float values are not JSON compliant: 'NaN'"},
	{"Infinity", "{\"a\": Infinity}", "Out of range float values are not JSON compliant: 'Infinity'"},
	{"-Infinity", "[1, -Infinity]", "Out of range float values are not JSON compliant: '-Infinity'"},
	{"lowercase nan", "nan", "Expecting value: line 1 column 1 (char 0)"},
	{"NaN after an error", "[1 NaN]", "Expecting ',' delimiter: line 1 column 4 (char 3)"},
	{"error after NaN", "[NaN 1]", "Out of range float values are not JSON compliant: 'NaN'"},
	{"Python True", "True", "Expecting value: line 1 column 1 (char 0)"},
	{"Python None", "None", "Expecting value: line 1 column 1 (char 0)"},
	{"truncated null", "nul", "Expecting value: line 1 column 1 (char 0)"},
	{"truncated true in array", "[tru]", "Expecting value: line 1 column 2 (char 1)"},
	{"multi-line error", "{\n  \"username\": \"alice\",\n  \"password\": \n}", "Expecting value: line 4 column 1 (char 40)"},
	{"multi-line crlf", "{\r\n  \"a\": 1,\r\n  \"b\" 2\r\n}", "Expecting ':' delimiter: line 3 column 7 (char 20)"},
	{"non-ascii before error", "{\"name\": \"Zo\xc3\xab\", \"x\": }", "Expecting value: line 1 column 22 (char 21)"},
	{"emoji before error", "[\"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\", ]", "Expecting value: line 1 column 8 (char 7)"},
	{"non-ascii multi-line", "{\"\xc3\xa9\":\n\"\xc3\xbc\" \"x\"}", "Expecting ',' delimiter: line 2 column 5 (char 10)"},
	{"invalid start byte", "\xff", "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"},
	{"invalid continuation in string", "{\"a\": \"\xc3(\"}", "'utf-8' codec can't decode byte 0xc3 in position 7: invalid continuation byte"},
	{"invalid second byte of 3", "\"\xe2(\xa1\"", "'utf-8' codec can't decode byte 0xe2 in position 1: invalid continuation byte"},
	{"invalid third byte of 3", "\"\xe2\x82(\"", "'utf-8' codec can't decode bytes in position 1-2: invalid continuation byte"},
	{"invalid fourth byte of 4", "\"\xf0\x9f\x98(\"", "'utf-8' codec can't decode bytes in position 1-3: invalid continuation byte"},
	{"overlong encoding", "\"\xc0\xaf\"", "'utf-8' codec can't decode byte 0xc0 in position 1: invalid start byte"},
	{"encoded surrogate", "\"\xed\xa0\x80\"", "'utf-8' codec can't decode byte 0xed in position 1: invalid continuation byte"},
	{"truncated sequence ends string", "\"abc\xe2\x82", "Unterminated string starting at: line 1 column 1 (char 0)"},
	{"truncated sequence after value", "{\"a\":1}\xe2\x82", ""},
	{"truncated surrogate after value", "[]\xed\xa0", ""},
	{"invalid utf8 wins over earlier json error", "{,}\xff", "'utf-8' codec can't decode byte 0xff in position 3: invalid start byte"},
	{"invalid utf8 late", "{\"a\": 1, \"b\": 2}\x80", "'utf-8' codec can't decode byte 0x80 in position 16: invalid start byte"},
	{"bom", "\xef\xbb\xbf{\"a\": 1}", "Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)"},
	{"bom only", "\xef\xbb\xbf", "Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)"},
	{"bom inside string is fine", "{\"a\": \"\xef\xbb\xbf\"}", ""},
	{"nul byte", "\x00", "Expecting value: line 1 column 1 (char 0)"},
	{"nul in string", "\"a\x00\"", "Invalid control character at: line 1 column 3 (char 2)"},
	{"deep nesting", strings.Repeat("[", 500) + strings.Repeat(`{"a":`, 300) + "1" + strings.Repeat("}", 300) + strings.Repeat("]", 500), ""},
}

func TestError(t *testing.T) {
	for _, c := range cases {
		if got := Error([]byte(c.in)); got != c.want {
			t.Errorf("%s: Error(%q)\n got %q\nwant %q", c.name, c.in, got, c.want)
		}
	}
}

func TestErrorDepth(t *testing.T) {
	nest := func(open, mid, close string, depth int) []byte {
		return []byte(strings.Repeat(open, depth) + mid + strings.Repeat(close, depth))
	}
	const arrMsg = "maximum recursion depth exceeded while decoding a JSON array from a unicode string"
	const objMsg = "maximum recursion depth exceeded while decoding a JSON object from a unicode string"
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"arrays at the limit", nest("[", "", "]", MaxDepth), ""},
		{"arrays past the limit", nest("[", "", "]", MaxDepth+1), arrMsg},
		{"objects at the limit", nest(`{"a":`, "1", "}", MaxDepth), ""},
		{"objects past the limit", nest(`{"a":`, "1", "}", MaxDepth+1), objMsg},
		{"mixed past the limit", append(nest("[", "", "", MaxDepth), '{'), objMsg},
		{"64 KiB of brackets", nest("[", "", "", 64<<10), arrMsg},
		{"error before the limit wins", append([]byte("[1 2]"), nest("[", "", "]", 5000)...),
			"Expecting ',' delimiter: line 1 column 4 (char 3)"},
		{"unclosed at the limit", nest("[", "", "", MaxDepth),
			"Expecting value: line 1 column 901 (char 900)"},
	}
	for _, c := range cases {
		if got := Error(c.in); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// oracleScript runs DRF's JSONParser on base64-encoded bodies, one per
// input line, and prints one base64 line per body: "OK", "E"+message (the
// ParseError detail without "JSON parse error - "), "R"+message for a
// RecursionError, or "X"+description for anything else.
const oracleScript = `
import sys, io, base64
import django
from django.conf import settings
settings.configure()
django.setup()
from rest_framework.parsers import JSONParser
from rest_framework.exceptions import ParseError
P = "JSON parse error - "
for line in sys.stdin:
    b = base64.b64decode(line.strip())
    try:
        JSONParser().parse(io.BytesIO(b), parser_context={})
        out = "OK"
    except ParseError as e:
        d = str(e.detail)
        out = "E" + (d[len(P):] if d.startswith(P) else "?" + d)
    except RecursionError as e:
        out = "R" + str(e)
    except Exception as e:
        out = "X" + type(e).__name__ + ": " + str(e)
    sys.stdout.write(base64.b64encode(out.encode("utf-8", "surrogateescape")).decode() + "\n")
    sys.stdout.flush()
`

const python = "/usr/bin/python3"

// oracle returns DRF's verdict for each input ("" for accepted), or
// skips the test when Python with Django REST Framework is not available
// (fatal when CI=true).
func oracle(t *testing.T, inputs [][]byte) []string {
	t.Helper()
	if out, err := exec.Command(python, "-c", "import django, rest_framework").CombinedOutput(); err != nil {
		msg := "oracle unavailable: " + python + " cannot import django and rest_framework: " + err.Error() + ": " + string(out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var stdin bytes.Buffer
	for _, in := range inputs {
		stdin.WriteString(base64.StdEncoding.EncodeToString(in))
		stdin.WriteByte('\n')
	}
	cmd := exec.Command(python, "-c", oracleScript)
	cmd.Stdin = &stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("oracle failed: %v\n%s", err, stderr.String())
	}
	var res []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		raw, err := base64.StdEncoding.DecodeString(sc.Text())
		if err != nil {
			t.Fatalf("oracle output %q: %v", sc.Text(), err)
		}
		s := string(raw)
		switch {
		case s == "OK":
			res = append(res, "")
		case strings.HasPrefix(s, "E") && !strings.HasPrefix(s, "E?"):
			res = append(res, s[1:])
		default:
			// Not a JSON parse error; keep it recognisably different.
			res = append(res, "<oracle "+s+">")
		}
	}
	if len(res) != len(inputs) {
		t.Fatalf("oracle answered %d of %d inputs\n%s", len(res), len(inputs), stderr.String())
	}
	return res
}

var snippets = []string{
	`{"username": "alice", "password": "s3cret"}`,
	`{"a": [1, -2.5e-3, 0, 10E+2, "x\"y\\z\/\b\f\n\r\t\u00e9"], "b": {"c": null, "d": true, "e": false}}`,
	`[[], {}, [[]], {"": ""}, "\ud83d\ude00", "\ud800", "\udc00x"]`,
	"{\"name\": \"Zo\u00eb \U0001F600\",\n  \"k\": [1,\r\n 2]}",
	`-0.0`, `"str"`, `null`, `123456789012345678901234567890`, `1e400`,
	` [ 1 , 2 ] `, `{"a":{"b":{"c":[[[1]]]}}}`,
}

// tokens are inserted by the mutator: JSON punctuation, near-miss
// literals, escapes, whitespace and non-whitespace, non-ASCII and invalid
// UTF-8.
var tokens = []string{
	"{", "}", "[", "]", ",", ":", `"`, `\`, "'", `\u`, `\ud800`, `\udc00`, `\uD83D\uDE00`, `\x`,
	"0", "1", "9", "-", "+", ".", "e", "E", "/", "//", "/*", "n", "t", "f", "nul", "NaN",
	"Infinity", "-Infinity", "true", "null", "false", " ", "\t", "\n", "\r", "\f", "\v",
	"\x00", "\x01", "\x1f", "\x7f", "\u00e9", "\U0001F600", "\u2028", "\xff", "\xc3",
	"\xe2\x82", "\xed\xa0", "\xed\xa0\x80", "\xf0\x9f", "\xc0\xaf", "\xef\xbb\xbf", "\xa0",
}

// randomInputs returns n deterministic mutations of snippets.
func randomInputs(seed int64, n int) [][]byte {
	rng := rand.New(rand.NewSource(seed))
	out := make([][]byte, 0, n)
	for len(out) < n {
		b := []byte(snippets[rng.Intn(len(snippets))])
		for k := rng.Intn(4); k >= 0; k-- {
			i := rng.Intn(len(b) + 1)
			tok := []byte(tokens[rng.Intn(len(tokens))])
			switch rng.Intn(6) {
			case 0: // delete
				j := min(len(b), i+1+rng.Intn(3))
				b = append(b[:i:i], b[j:]...)
			case 1: // insert
				b = append(b[:i:i], append(tok, b[i:]...)...)
			case 2: // replace
				j := min(len(b), i+1)
				b = append(b[:i:i], append(tok, b[j:]...)...)
			case 3: // truncate
				b = b[:i]
			case 4: // duplicate a segment
				j := min(len(b), i+rng.Intn(8))
				seg := append([]byte(nil), b[i:j]...)
				b = append(b[:j:j], append(seg, b[j:]...)...)
			case 5: // prepend or append
				if rng.Intn(2) == 0 {
					b = append(tok, b...)
				} else {
					b = append(b, tok...)
				}
			}
		}
		out = append(out, b)
	}
	return out
}

// TestErrorMatchesDRF compares Error with DRF itself on the table
// and on random mutations. PYJSON_ORACLE_N raises the number of mutations.
func TestErrorMatchesDRF(t *testing.T) {
	n := 400
	if s := os.Getenv("PYJSON_ORACLE_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatalf("PYJSON_ORACLE_N: %v", err)
		}
	}
	var inputs [][]byte
	for _, c := range cases {
		inputs = append(inputs, []byte(c.in))
	}
	inputs = append(inputs, randomInputs(1, n)...)
	want := oracle(t, inputs)
	bad := 0
	for i, in := range inputs {
		if got := Error(in); got != want[i] {
			bad++
			if bad <= 20 {
				t.Errorf("Error(%q)\n got %q\nDRF %q", in, got, want[i])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d inputs differ from DRF", bad, len(inputs))
	}
}

// trimTail drops a truncated UTF-8 sequence (a lead byte followed by
// fewer continuation bytes than it announces) from the end of b, which is
// what CPython's incremental decoder leaves undecoded.
func trimTail(b []byte) []byte {
	for k := 1; k <= 3 && k <= len(b); k++ {
		lead := b[len(b)-k]
		need := 0
		switch {
		case lead >= 0xC2 && lead <= 0xDF:
			need = 2
		case lead >= 0xE0 && lead <= 0xEF:
			need = 3
		case lead >= 0xF0 && lead <= 0xF4:
			need = 4
		}
		if need == 0 {
			if lead >= 0x80 && lead <= 0xBF {
				continue // continuation byte: look further back
			}
			return b
		}
		if k < need {
			return b[:len(b)-k]
		}
		return b
	}
	return b
}

var prefixes = []string{
	"Expecting value: ", "Expecting property name enclosed in double quotes: ",
	"Expecting ':' delimiter: ", "Expecting ',' delimiter: ", "Unterminated string starting at: ",
	"Invalid control character at: ", `Invalid \escape: `, `Invalid \uXXXX escape: `, "Extra data: ",
	"Unexpected UTF-8 BOM (decode using utf-8-sig): ", "'utf-8' codec can't decode ",
	"Out of range float values are not JSON compliant: ", "Exceeds the limit (4300 digits) ",
	"maximum recursion depth exceeded while decoding a JSON ",
}

// FuzzError checks Error against encoding/json: what Python
// accepts is standard JSON once a truncated UTF-8 sequence at the end is
// dropped, and standard JSON that is valid UTF-8 without a BOM is accepted
// unless it has an integer over 4300 digits or nesting past MaxDepth.
func FuzzError(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c.in))
	}
	for _, in := range randomInputs(2, 50) {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		msg := Error(b)
		if msg == "" {
			trimmed := trimTail(b)
			if !json.Valid(trimmed) || !utf8.Valid(trimmed) || bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) {
				t.Fatalf("Error accepted %q, which is not valid JSON", b)
			}
			return
		}
		known := false
		for _, p := range prefixes {
			known = known || strings.HasPrefix(msg, p)
		}
		if !known {
			t.Fatalf("Error(%q) = %q: unknown message", b, msg)
		}
		if json.Valid(b) && utf8.Valid(b) && !bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) &&
			!longDigitRun(b) && bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) <= MaxDepth {
			t.Fatalf("Error(%q) = %q, but it is valid JSON", b, msg)
		}
	})
}

// longDigitRun reports whether b has more than IntMaxDigits
// consecutive ASCII digits.
func longDigitRun(b []byte) bool {
	run := 0
	for _, c := range b {
		if c >= '0' && c <= '9' {
			run++
			if run > IntMaxDigits {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}
