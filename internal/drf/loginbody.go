package drf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/tokenauth/caddy-tokenauth/internal/pyjson"
)

// How DRF's parsers and AuthTokenSerializer read a login request: the body
// by media type, then each field as a CharField.

// Field is one login field as DRF's CharField sees it.
type Field struct {
	present bool
	null    bool
	invalid bool // a bool, list or object
	value   string
}

// LoginBody is what the login view got: fields, or a whole-request error.
type LoginBody struct {
	Username, Password Field
	Status             int    // non-zero: answer with Detail and this status
	Detail             string // for Status
	NonField           string // a non_field_errors message
}

// ParseLoginBody parses the body as DRF's FormParser, MultiPartParser and
// JSONParser would.
//
// As DRF: a request without a body (Content-Length 0 or absent) has empty
// data whatever its media type; a body without a media type is 415 with
// the empty type; media types compare case-insensitively.
func ParseLoginBody(r *http.Request, body []byte) LoginBody {
	if len(body) == 0 {
		return LoginBody{}
	}
	ct := r.Header.Get("Content-Type")
	full, _, _ := strings.Cut(ct, ";")
	full = strings.ToLower(strings.TrimSpace(full))
	switch {
	case full == "":
	case mediaMatches("application/x-www-form-urlencoded", full):
		values := parseQS(string(body))
		return LoginBody{Username: formField(values, "username"), Password: formField(values, "password")}
	case mediaMatches("multipart/form-data", full):
		_, params, err := mime.ParseMediaType(ct)
		if err != nil || params["boundary"] == "" {
			return LoginBody{Status: 400, Detail: "Multipart form parse error - Invalid boundary in multipart: None"}
		}
		form, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).ReadForm(int64(len(body)) + 1)
		if err != nil {
			return LoginBody{Status: 400, Detail: "Multipart form parse error - " + err.Error()}
		}
		defer form.RemoveAll()
		// Django decodes each field name and value with errors='replace'
		// (MultiPartParser's force_str), so no invalid UTF-8 reaches the
		// store. A name is looked up as it came: its decoding is
		// "username" only if it is "username" (a replaced byte would be
		// U+FFFD), so a name with invalid bytes is another field for both.
		return LoginBody{Username: multipartField(form.Value, "username"), Password: multipartField(form.Value, "password")}
	case mediaMatches("application/json", full):
		return parseJSONBody(body)
	}
	return LoginBody{Status: http.StatusUnsupportedMediaType, Detail: unsupportedMediaType(ct)}
}

// mediaMatches is DRF's media_type_matches(parser type, content type):
// exact type and subtype, or a wildcard in the content type.
func mediaMatches(parser, contentType string) bool {
	pm, ps, _ := strings.Cut(parser, "/")
	cm, cs, _ := strings.Cut(contentType, "/")
	return (cm == "*" || cm == pm) && (cs == "*" || cs == ps)
}

// formField reads a form value as DRF does from a QueryDict: the last value.
func formField(values map[string][]string, name string) Field {
	vs, ok := values[name]
	if !ok || len(vs) == 0 {
		return Field{}
	}
	return Field{present: true, value: vs[len(vs)-1]}
}

// multipartField is formField of a multipart form, its value decoded as
// Django's MultiPartParser does.
func multipartField(values map[string][]string, name string) Field {
	f := formField(values, name)
	f.value = decodeUTF8(f.value)
	return f
}

func parseJSONBody(body []byte) LoginBody {
	if msg := pyjson.Error(body); msg != "" {
		return LoginBody{Status: 400, Detail: "JSON parse error - " + msg}
	}
	if !utf8.Valid(body) {
		// What pyjson.Error accepts is valid UTF-8 but for a truncated
		// sequence at the very end, which DRF's incremental decoder
		// drops: parse the text without it.
		body = []byte(string(pyjson.Runes(body)))
	}
	raw := bytes.TrimLeft(body, " \t\r\n")
	if raw[0] != '{' {
		if raw[0] == 'n' {
			return LoginBody{NonField: MsgNoData}
		}
		return LoginBody{NonField: "Invalid data. Expected a dictionary, but got " + pyjson.TypeName(raw) + "."}
	}
	// Members stay raw so that strings keep lone surrogates, as Python's
	// do; the last of duplicate members wins, as in Python.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return LoginBody{Status: 400, Detail: "JSON parse error - " + err.Error()}
	}
	return LoginBody{Username: jsonField(obj, "username"), Password: jsonField(obj, "password")}
}

// jsonField reads a JSON member as DRF's CharField: strings as they are,
// numbers as Python's str() gives them.
func jsonField(obj map[string]json.RawMessage, name string) Field {
	raw, ok := obj[name]
	if !ok {
		return Field{}
	}
	raw = bytes.TrimSpace(raw)
	switch c := raw[0]; {
	case c == 'n':
		return Field{present: true, null: true}
	case c == '"':
		return Field{present: true, value: pyjson.Unquote(raw)}
	case c == '-' || (c >= '0' && c <= '9'):
		return Field{present: true, value: pyjson.Str(json.Number(raw))}
	}
	return Field{present: true, invalid: true}
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

// Validate runs CharField.run_validation for one field: the validated
// value, or its error messages.
func (f Field) Validate(trim bool) (string, []string) {
	switch {
	case !f.present:
		return "", []string{MsgRequired}
	case f.null:
		return "", []string{MsgNull}
	case f.invalid:
		return "", []string{MsgNotString}
	}
	v := f.value
	if v == "" || (trim && pyStrip(v) == "") {
		return "", []string{MsgBlank}
	}
	if trim {
		v = pyStrip(v)
	}
	// Every validator runs; their messages add up.
	var errs []string
	if strings.IndexByte(v, 0) >= 0 {
		errs = append(errs, MsgNullChars)
	}
	if r := firstSurrogate(v); r >= 0 {
		errs = append(errs, fmt.Sprintf("Surrogate characters are not allowed: U+%X.", r))
	}
	return v, errs
}
