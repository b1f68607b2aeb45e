package tokenauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tokenauth/caddy-tokenauth/password"
	"github.com/tokenauth/caddy-tokenauth/store"
)

// Login is DRF's obtain_auth_token endpoint, answered by Caddy: POST a
// username and password, get the user's token.
type Login struct {
	// Path is the request path of the endpoint, matched exactly (for
	// example /api/auth-token/). It must lie within the handler's matcher.
	Path string `json:"path"`

	// Throttle limits the requests one client IP may send to the
	// endpoint, in DRF's rate syntax: 5/min, 100/hour, 1000/day. The
	// client IP is Caddy's: with trusted_proxies configured, the address a
	// trusted proxy reports; otherwise the peer address (a client's own
	// X-Forwarded-For is ignored). Default: none (as DRF).
	Throttle string `json:"throttle,omitempty"`

	// MaxBody is the largest request body accepted, in bytes; a larger one
	// gets 413. Default: 65536.
	MaxBody int64 `json:"max_body,omitempty"`

	// UpgradeHashes rewrites a user's stored password with Django's
	// current default (pbkdf2_sha256, 1,000,000 iterations) after a
	// successful login with an older hasher or iteration count, as Django
	// itself does. Off by default, since the database may belong to a
	// Django project that manages its own hashes.
	UpgradeHashes bool `json:"upgrade_hashes,omitempty"`

	throttle *throttle
}

// defaultMaxBody limits login request bodies.
const defaultMaxBody = 64 << 10

// storeTimeout bounds the store calls of login and logout.
const storeTimeout = 5 * time.Second

// Fixed answers of the login endpoint.
var (
	loginAllow       = "POST, OPTIONS"
	loginOptionsBody = []byte(`{"name":"Obtain Auth Token","description":"","renders":["application/json"],"parses":["application/x-www-form-urlencoded","multipart/form-data","application/json"],"actions":{"POST":{"username":{"type":"string","required":true,"read_only":false,"label":"Username"},"password":{"type":"string","required":true,"read_only":false,"label":"Password"},"token":{"type":"string","required":false,"read_only":true,"label":"Token"}}}}`)
)

// DRF's serializer messages (rest_framework/fields.py, authtoken/serializers.py).
const (
	msgRequired    = "This field is required."
	msgBlank       = "This field may not be blank."
	msgNull        = "This field may not be null."
	msgNotString   = "Not a valid string."
	msgNullChars   = "Null characters are not allowed."
	msgBadLogin    = "Unable to log in with provided credentials."
	msgNoData      = "No data provided"
	msgNotAccepted = "Could not satisfy the request Accept header."
)

// jsonPair is one member of a JSON object written in order.
type jsonPair struct {
	key   string
	value any
}

// writeJSON writes status and the members as DRF's JSONRenderer would:
// compact, UTF-8 unescaped, or indented when the client asked for
// "application/json; indent=N".
func writeJSON(w http.ResponseWriter, status, indent int, members ...jsonPair) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			buf.WriteByte(',')
		}
		_ = enc.Encode(m.key)
		buf.Truncate(buf.Len() - 1) // Encode's newline
		buf.WriteByte(':')
		_ = enc.Encode(m.value)
		buf.Truncate(buf.Len() - 1)
	}
	buf.WriteByte('}')
	body := buf.Bytes()
	if indent >= 0 {
		var out bytes.Buffer
		_ = json.Indent(&out, body, "", strings.Repeat(" ", indent))
		body = out.Bytes()
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// negotiate runs DRF's content negotiation for a JSON-only view. It
// reports whether application/json is acceptable and, if the chosen Accept
// entry carries indent=N, the indent (-1 otherwise).
func negotiate(r *http.Request) (ok bool, indent int) {
	accept := strings.Join(r.Header.Values("Accept"), ",")
	if strings.TrimSpace(accept) == "" {
		return true, -1
	}
	best, indent := -1, -1
	for _, entry := range strings.Split(accept, ",") {
		full, params, _ := strings.Cut(entry, ";")
		full = strings.TrimSpace(full)
		main, sub, _ := strings.Cut(full, "/")
		if (main != "*" && main != "application") || (sub != "*" && sub != "json") {
			continue
		}
		// DRF's precedence: */* < type/* < type/subtype < with params.
		prec := 0
		switch {
		case main == "*":
		case sub == "*":
			prec = 1
		default:
			prec = 2
		}
		entryIndent := -1
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(p, "=")
			k = strings.ToLower(strings.TrimSpace(k))
			if k == "" || k == "q" {
				continue
			}
			if prec == 2 {
				prec = 3
			}
			if k == "indent" {
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					entryIndent = min(max(n, 0), 8)
				}
			}
		}
		if prec > best {
			best, indent = prec, entryIndent
		}
	}
	return best >= 0, indent
}

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
func parseLoginBody(r *http.Request, body []byte) parsedBody {
	ct := r.Header.Get("Content-Type")
	if len(body) == 0 || strings.TrimSpace(ct) == "" {
		return parsedBody{} // DRF: no stream or no media type → empty data
	}
	full, _, _ := strings.Cut(ct, ";")
	full = strings.TrimSpace(full)
	switch {
	case mediaMatches("application/x-www-form-urlencoded", full):
		values, err := url.ParseQuery(string(body))
		if err != nil {
			return parsedBody{status: 400, detail: "Form parse error - " + err.Error()}
		}
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
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return parsedBody{status: 400, detail: "JSON parse error - " + err.Error()}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return parsedBody{nonField: msgNoData}
		}
		return parsedBody{nonField: "Invalid data. Expected a dictionary, but got " + pyTypeName(v) + "."}
	}
	return parsedBody{username: jsonField(obj, "username"), password: jsonField(obj, "password")}
}

// pyTypeName is the Python type name of a decoded JSON value.
func pyTypeName(v any) string {
	switch v := v.(type) {
	case []any:
		return "list"
	case string:
		return "str"
	case bool:
		return "bool"
	case json.Number:
		if strings.ContainsAny(v.String(), ".eE") {
			return "float"
		}
		return "int"
	}
	return "dict"
}

// jsonField reads a JSON member as DRF's CharField: strings as they are,
// numbers as Python's str() gives them.
func jsonField(obj map[string]any, name string) field {
	v, ok := obj[name]
	if !ok {
		return field{}
	}
	switch v := v.(type) {
	case nil:
		return field{present: true, null: true}
	case string:
		return field{present: true, value: v}
	case json.Number:
		return field{present: true, value: pyNumber(v)}
	}
	return field{present: true, invalid: true}
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

// validate runs CharField.run_validation for one field and returns its
// error message, or "" and the validated value.
func (f field) validate(trim bool) (string, string) {
	switch {
	case !f.present:
		return "", msgRequired
	case f.null:
		return "", msgNull
	case f.invalid:
		return "", msgNotString
	}
	v := f.value
	if v == "" || (trim && pyStrip(v) == "") {
		return "", msgBlank
	}
	if trim {
		v = pyStrip(v)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return "", msgNullChars
	}
	return v, ""
}

// serveLogin answers the login endpoint once authentication has run.
func (h *TokenAuth) serveLogin(w http.ResponseWriter, r *http.Request, indent int) error {
	w.Header().Set("Allow", loginAllow)
	if t := h.Login.throttle; t != nil {
		if wait := t.allow(clientIP(r)); wait > 0 {
			detail, retry := throttledDetail(wait)
			w.Header().Set("Retry-After", retry)
			writeJSON(w, http.StatusTooManyRequests, indent, jsonPair{"detail", detail})
			return nil
		}
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		if indent >= 0 {
			var out bytes.Buffer
			_ = json.Indent(&out, loginOptionsBody, "", strings.Repeat(" ", indent))
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(out.Bytes())
			return nil
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(loginOptionsBody)
		return nil
	default:
		writeJSON(w, http.StatusMethodNotAllowed, indent, jsonPair{"detail", `Method "` + r.Method + `" not allowed.`})
		return nil
	}

	maxBody := h.Login.MaxBody
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, indent, jsonPair{"detail", "Could not read the request body."})
		return nil
	}
	if int64(len(body)) > maxBody {
		writeJSON(w, http.StatusRequestEntityTooLarge, indent, jsonPair{"detail", "Request body is larger than " + strconv.FormatInt(maxBody, 10) + " bytes."})
		return nil
	}

	p := parseLoginBody(r, body)
	switch {
	case p.status != 0:
		writeJSON(w, p.status, indent, jsonPair{"detail", p.detail})
		return nil
	case p.nonField != "":
		writeJSON(w, http.StatusBadRequest, indent, jsonPair{"non_field_errors", []string{p.nonField}})
		return nil
	}
	username, uerr := p.username.validate(true)
	pw, perr := p.password.validate(false)
	if uerr != "" || perr != "" {
		var errs []jsonPair
		if uerr != "" {
			errs = append(errs, jsonPair{"username", []string{uerr}})
		}
		if perr != "" {
			errs = append(errs, jsonPair{"password", []string{perr}})
		}
		writeJSON(w, http.StatusBadRequest, indent, errs...)
		return nil
	}

	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	user, ok, err := h.authenticate(ctx, username, pw)
	if err != nil {
		return h.unavailable(w, err)
	}
	if !ok {
		writeJSON(w, http.StatusBadRequest, indent, jsonPair{"non_field_errors", []string{msgBadLogin}})
		return nil
	}
	key, err := h.store.CreateToken(ctx, user.Username, false)
	if err != nil {
		return h.unavailable(w, err)
	}
	writeJSON(w, http.StatusOK, indent, jsonPair{"token", key})
	return nil
}

// authenticate is Django's ModelBackend.authenticate: the password check
// runs before the active check, an unknown user costs one default-hasher
// run, and an outdated hash is upgraded when configured.
func (h *TokenAuth) authenticate(ctx context.Context, username, raw string) (store.User, bool, error) {
	user, err := h.store.User(ctx, username)
	if errors.Is(err, store.ErrNoUser) {
		h.hashing(func() { password.Dummy(raw) })
		return store.User{}, false, nil
	}
	if err != nil {
		return store.User{}, false, err
	}
	var ok, mustUpdate bool
	h.hashing(func() { ok, mustUpdate = password.Check(raw, user.Password) })
	if ok && mustUpdate && h.Login.UpgradeHashes {
		if encoded, err := password.Make(raw, 0); err == nil {
			if err := h.store.SetPassword(ctx, user.Username, encoded); err != nil {
				h.logger.Warn("upgrading password hash failed", zap.String("user_id", user.ID), zap.Error(err))
			}
		}
	}
	return user, ok && user.Active, nil
}

// hashing runs a password hash while holding one of the slots that bound
// how many run at once, so a flood of logins queues instead of starving
// every other request of CPU.
func (h *TokenAuth) hashing(f func()) {
	h.hashSlots <- struct{}{}
	defer func() { <-h.hashSlots }()
	f()
}

// serveLogout deletes the caller's token: 204 with no body.
func (h *TokenAuth) serveLogout(w http.ResponseWriter, r *http.Request, key string) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", loginAllow)
		writeJSON(w, http.StatusMethodNotAllowed, -1, jsonPair{"detail", `Method "` + r.Method + `" not allowed.`})
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	if _, err := h.store.DeleteKey(ctx, key); err != nil {
		return h.unavailable(w, err)
	}
	if h.cache != nil {
		h.cache.forget(key)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// unavailable answers 503 when the store cannot: the request is never let
// through unverified.
func (h *TokenAuth) unavailable(w http.ResponseWriter, err error) error {
	if c := h.logger.Check(zapcore.ErrorLevel, "token store unavailable"); c != nil {
		c.Write(zap.Error(err))
	}
	w.Header()["Retry-After"] = []string{unavailableRetryWait}
	writeDRFError(w, http.StatusServiceUnavailable, "", &errUnavailable)
	return nil
}

// clientIP is the client address as Caddy determined it (trusted_proxies
// respected), for throttling.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	return r.RemoteAddr
}
