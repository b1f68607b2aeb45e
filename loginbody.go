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
		return parsedBody{username: formField(form.Value, "username"), password: formField(form.Value, "password")}
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

func parseJSONBody(body []byte) parsedBody {
	if msg := pyJSONError(body); msg != "" {
		return parsedBody{status: 400, detail: "JSON parse error - " + msg}
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
// invalid percent escapes left as they are and invalid UTF-8 replaced.
func pyParseQS(s string) map[string][]string {
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

// pyUnquotePlus is Python's urllib.parse.unquote_plus with errors='replace'.
func pyUnquotePlus(s string) string {
	s = strings.ReplaceAll(s, "+", " ")
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			n, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			out = append(out, byte(n))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return strings.ToValidUTF8(string(out), "\uFFFD")
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
