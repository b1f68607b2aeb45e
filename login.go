package tokenauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	if uerr != nil || perr != nil {
		var errs []jsonPair
		if uerr != nil {
			errs = append(errs, jsonPair{"username", uerr})
		}
		if perr != nil {
			errs = append(errs, jsonPair{"password", perr})
		}
		writeJSON(w, http.StatusBadRequest, indent, errs...)
		return nil
	}

	user, ok, err := h.authenticate(r.Context(), username, pw)
	if err != nil {
		return h.unavailable(w, err)
	}
	if !ok {
		writeJSON(w, http.StatusBadRequest, indent, jsonPair{"non_field_errors", []string{msgBadLogin}})
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	key, err := h.store.CreateToken(ctx, user.Username, false)
	if err != nil {
		return h.unavailable(w, err)
	}
	writeJSON(w, http.StatusOK, indent, jsonPair{"token", key})
	return nil
}

// authenticate is Django's ModelBackend.authenticate: the password check
// runs before the active check, an unknown user costs one default-hasher
// run, and an outdated hash is upgraded when configured. Each store call
// has its own time limit; the hashing has none but the client's.
func (h *TokenAuth) authenticate(ctx context.Context, username, raw string) (store.User, bool, error) {
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	user, err := h.store.User(sctx, username)
	cancel()
	if errors.Is(err, store.ErrNoUser) {
		err = h.hashing(ctx, func() { password.Dummy(raw) })
		return store.User{}, false, err
	}
	if err != nil {
		return store.User{}, false, err
	}
	var ok, mustUpdate bool
	if err := h.hashing(ctx, func() { ok, mustUpdate = password.Check(raw, user.Password) }); err != nil {
		return store.User{}, false, err
	}
	if ok && mustUpdate && h.Login.UpgradeHashes {
		if encoded, err := password.Make(raw, 0); err == nil {
			sctx, cancel := context.WithTimeout(ctx, storeTimeout)
			if err := h.store.SetPassword(sctx, user.Username, encoded); err != nil {
				h.logger.Warn("upgrading password hash failed", zap.String("user_id", user.ID), zap.Error(err))
			}
			cancel()
		}
	}
	return user, ok && user.Active, nil
}

// hashing runs a password hash while holding one of the slots that bound
// how many run at once, so a flood of logins queues instead of starving
// every other request of CPU. A client that leaves stops waiting.
func (h *TokenAuth) hashing(ctx context.Context, f func()) error {
	select {
	case h.hashSlots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting to check a password: %w", ctx.Err())
	}
	defer func() { <-h.hashSlots }()
	f()
	return nil
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
