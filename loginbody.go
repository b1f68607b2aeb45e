package tokenauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// How DRF's parsers and AuthTokenSerializer read a login request: the body
// by media type, then each field as a CharField.

// field is one login field as DRF's CharField sees it.
type field struct {
	present bool
	null    bool
	invalid bool // a bool, list or object
	value   string
}

// parsedBody is what the login view got: fields, or a whole-request error.
type parsedBody struct {
	username, password field
	status             int    // non-zero: answer with detail and this status
	detail             string // for status
	nonField           string // a non_field_errors message
}

// parseLoginBody parses the body as DRF's FormParser, MultiPartParser and
// JSONParser would.
//
// As DRF: a request without a body (Content-Length 0 or absent) has empty
// data whatever its media type; a body without a media type is 415 with
// the empty type; media types compare case-insensitively.
func parseLoginBody(r *http.Request, body []byte) parsedBody {
	if len(body) == 0 {
		return parsedBody{}
	}
	ct := r.Header.Get("Content-Type")
	full, _, _ := strings.Cut(ct, ";")
	full = strings.ToLower(strings.TrimSpace(full))
	switch {
	case full == "":
	case mediaMatches("application/x-www-form-urlencoded", full):
		values := pyParseQS(string(body))
		return parsedBody{username: formField(values, "username"), password: formField(values, "password")}
	case mediaMatches("multipart/form-data", full):
		_, params, err := mime.ParseMediaType(ct)
		if err != nil || params["boundary"] == "" {
			return parsedBody{status: 400, detail: "Multipart form parse error - Invalid boundary in multipart: None"}
		}
		form, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).ReadForm(int64(len(body)) + 1)
		if err != nil {
			return parsedBody{status: 400, detail: "Multipart form parse error - " + err.Error()}
		}
		defer form.RemoveAll()
		// Django decodes each field name and value with errors='replace'
		// (MultiPartParser's force_str), so no invalid UTF-8 reaches the
		// store. A name is looked up as it came: its decoding is
		// "username" only if it is "username" (a replaced byte would be
		// U+FFFD), so a name with invalid bytes is another field for both.
		return parsedBody{username: multipartField(form.Value, "username"), password: multipartField(form.Value, "password")}
	case mediaMatches("application/json", full):
		return parseJSONBody(body)
	}
	return parsedBody{status: http.StatusUnsupportedMediaType, detail: `Unsupported media type "` + ct + `" in request.`}
}

// mediaMatches is DRF's media_type_matches(parser type, content type):
// exact type and subtype, or a wildcard in the content type.
func mediaMatches(parser, contentType string) bool {
	pm, ps, _ := strings.Cut(parser, "/")
	cm, cs, _ := strings.Cut(contentType, "/")
	return (cm == "*" || cm == pm) && (cs == "*" || cs == ps)
}

// formField reads a form value as DRF does from a QueryDict: the last value.
func formField(values map[string][]string, name string) field {
	vs, ok := values[name]
	if !ok || len(vs) == 0 {
		return field{}
	}
	return field{present: true, value: vs[len(vs)-1]}
}

// multipartField is formField of a multipart form, its value decoded as
// Django's MultiPartParser does.
func multipartField(values map[string][]string, name string) field {
	f := formField(values, name)
	f.value = pyDecodeUTF8(f.value)
	return f
}

func parseJSONBody(body []byte) parsedBody {
	if msg := pyJSONError(body); msg != "" {
		return parsedBody{status: 400, detail: "JSON parse error - " + msg}
	}
	if !utf8.Valid(body) {
		// What pyJSONError accepts is valid UTF-8 but for a truncated
		// sequence at the very end, which DRF's incremental decoder
		// drops: parse the text without it.
		body = []byte(string(pyJSONRunes(body)))
	}
	raw := bytes.TrimLeft(body, " \t\r\n")
	if raw[0] != '{' {
		if raw[0] == 'n' {
			return parsedBody{nonField: msgNoData}
		}
		return parsedBody{nonField: "Invalid data. Expected a dictionary, but got " + pyTypeName(raw) + "."}
	}
	// Members stay raw so that strings keep lone surrogates, as Python's
	// do; the last of duplicate members wins, as in Python.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return parsedBody{status: 400, detail: "JSON parse error - " + err.Error()}
	}
	return parsedBody{username: jsonField(obj, "username"), password: jsonField(obj, "password")}
}

// pyTypeName is the Python type name of a JSON value, from its first byte.
func pyTypeName(raw []byte) string {
	switch raw[0] {
	case '[':
		return "list"
	case '"':
		return "str"
	case 't', 'f':
		return "bool"
	case '{':
		return "dict"
	}
	if bytes.ContainsAny(raw, ".eE") {
		return "float"
	}
	return "int"
}

// jsonField reads a JSON member as DRF's CharField: strings as they are,
// numbers as Python's str() gives them.
func jsonField(obj map[string]json.RawMessage, name string) field {
	raw, ok := obj[name]
	if !ok {
		return field{}
	}
	raw = bytes.TrimSpace(raw)
	switch c := raw[0]; {
	case c == 'n':
		return field{present: true, null: true}
	case c == '"':
		return field{present: true, value: pyUnquote(raw)}
	case c == '-' || (c >= '0' && c <= '9'):
		return field{present: true, value: pyNumber(json.Number(raw))}
	}
	return field{present: true, invalid: true}
}

// pyUnquote decodes a JSON string literal that pyJSONError accepted, as
// Python does: a lone surrogate escape (\ud800) stays a surrogate, kept
// here in WTF-8 (three bytes 0xED 0xA0–0xBF …) for the validators to find.
func pyUnquote(raw []byte) string {
	raw = raw[1 : len(raw)-1]
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(raw[i+1 : i+5])
			i += 4
			if utf16.IsSurrogate(r) && r < 0xDC00 && i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if lo := hex4(raw[i+3 : i+7]); lo >= 0xDC00 && lo <= 0xDFFF {
					out = utf8.AppendRune(out, utf16.DecodeRune(r, lo))
					i += 6
					continue
				}
			}
			if utf16.IsSurrogate(r) {
				out = append(out, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
				continue
			}
			out = utf8.AppendRune(out, r)
		default: // " \ /
			out = append(out, raw[i])
		}
	}
	return string(out)
}

func hex4(b []byte) rune {
	n, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(n)
}

// firstSurrogate returns the first surrogate code point in a WTF-8 string,
// or -1.
func firstSurrogate(s string) rune {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == 0xED && s[i+1] >= 0xA0 && s[i+1] <= 0xBF {
			return rune(s[i]&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F)
		}
	}
	return -1
}

// pyParseQS parses a form body as Django's QueryDict does: pairs separated
// by "&" only (not ";", since Django 3.2), blank values kept, "+" as space,
// invalid percent escapes left as they are. A body that is not valid UTF-8
// is read as ISO-8859-1 instead (QueryDict's fallback for "misbehaving user
// agents"), and percent escapes decode as UTF-8 with errors='replace'.
func pyParseQS(s string) map[string][]string {
	if !utf8.ValidString(s) {
		s = latin1ToUTF8(s)
	}
	values := make(map[string][]string)
	for _, pair := range strings.Split(s, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, v = pyUnquotePlus(k), pyUnquotePlus(v)
		values[k] = append(values[k], v)
	}
	return values
}

// latin1ToUTF8 decodes s as ISO-8859-1: each byte is the code point of its
// value.
func latin1ToUTF8(s string) string {
	out := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		out = utf8.AppendRune(out, rune(s[i]))
	}
	return string(out)
}

// pyUnquotePlus is Python's urllib.parse.unquote_plus with errors='replace'
// on s, which is valid UTF-8: each run of ASCII characters is
// percent-decoded to bytes and those decoded as pyDecodeUTF8 does; other
// characters stay as they are.
func pyUnquotePlus(s string) string {
	s = strings.ReplaceAll(s, "+", " ")
	if !strings.Contains(s, "%") {
		return s
	}
	var out, run []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			// Not ASCII: the end of a run. The bytes of a whole
			// character follow, and its lead byte ends any sequence
			// the run left open, so decoding here is as Python's.
			out = append(out, pyDecodeUTF8(string(run))...)
			run = run[:0]
			out = append(out, c)
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			n, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			run = append(run, byte(n))
			i += 2
		default:
			run = append(run, c)
		}
	}
	return string(append(out, pyDecodeUTF8(string(run))...))
}

// pyDecodeUTF8 is Python's bytes.decode('utf-8', 'replace'): each maximal
// subpart of an ill-formed sequence becomes one U+FFFD (Unicode's
// "substitution of maximal subparts"). A byte that starts no sequence is
// one subpart; so is a lead byte with the continuation bytes that validly
// follow it before the sequence breaks off: "\xe2\x82x" is "\ufffdx", where
// Go's utf8.DecodeRuneInString gives two U+FFFD and strings.ToValidUTF8 one
// for any run of bad bytes.
func pyDecodeUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r != utf8.RuneError || size > 1 {
			out = append(out, s[i:i+size]...)
			i += size
			continue
		}
		out = append(out, "\uFFFD"...)
		i += utf8MaximalSubpart(s[i:])
	}
	return string(out)
}

// utf8MaximalSubpart is the length of the maximal subpart at the start of
// s, which does not start with a valid sequence: the lead byte and the
// continuation bytes in the ranges of Unicode's Table 3-7 that follow it,
// at least 1.
func utf8MaximalSubpart(s string) int {
	c := s[0]
	var need int         // continuation bytes after the lead
	lo, hi := 0x80, 0xBF // the range of the first of them
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	default: // 0x80–0xC1, 0xF5–0xFF
		return 1
	}
	n := 1
	for ; n <= need && n < len(s); n++ {
		if b := int(s[n]); b < lo || b > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return n
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// pyNumber formats a JSON number as Python's str() of the int or float
// json.loads makes of it.
func pyNumber(n json.Number) string {
	s := n.String()
	if !strings.ContainsAny(s, ".eE") {
		if s == "-0" {
			return "0"
		}
		return s // JSON has no leading zeros: Python prints ints as written
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && math.IsInf(f, 0) {
		if f < 0 {
			return "-inf" // out of range: Python's float() overflows to inf
		}
		return "inf"
	}
	return pyFloatRepr(f)
}

// pyFloatRepr is Python's repr() of a float: the shortest round-trip
// digits, positional from 1e-4 to 1e16, else exponent form.
func pyFloatRepr(f float64) string {
	abs := f
	if abs < 0 {
		abs = -abs
	}
	if abs != 0 && (abs < 1e-4 || abs >= 1e16) {
		s := strconv.FormatFloat(f, 'e', -1, 64) // 1e+16, 1.5e-07
		mant, exp, _ := strings.Cut(s, "e")
		sign := exp[0]
		digits := strings.TrimLeft(exp[1:], "0")
		if len(digits) < 2 {
			digits = strings.Repeat("0", 2-len(digits)) + digits
		}
		return mant + "e" + string(sign) + digits
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// pyStrip is Python's str.strip(): Unicode whitespace, including the
// separators U+001C–U+001F that Go's unicode.IsSpace leaves out.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool {
		return (r >= 0x1c && r <= 0x1f) || isUnicodeSpace(r)
	})
}

func isUnicodeSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// validate runs CharField.run_validation for one field: the validated
// value, or its error messages.
func (f field) validate(trim bool) (string, []string) {
	switch {
	case !f.present:
		return "", []string{msgRequired}
	case f.null:
		return "", []string{msgNull}
	case f.invalid:
		return "", []string{msgNotString}
	}
	v := f.value
	if v == "" || (trim && pyStrip(v) == "") {
		return "", []string{msgBlank}
	}
	if trim {
		v = pyStrip(v)
	}
	// Every validator runs; their messages add up.
	var errs []string
	if strings.IndexByte(v, 0) >= 0 {
		errs = append(errs, msgNullChars)
	}
	if r := firstSurrogate(v); r >= 0 {
		errs = append(errs, fmt.Sprintf("Surrogate characters are not allowed: U+%X.", r))
	}
	return v, errs
}
