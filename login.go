package tokenauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tokenauth/caddy-tokenauth/internal/drf"
	"github.com/tokenauth/caddy-tokenauth/internal/throttle"
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

	// BodyTimeout is how long the client has to send the whole request
	// body, counted from when the endpoint starts reading it; a client
	// still sending then gets 408 and the connection is closed. It never
	// lengthens the server's own read_body timeout. Default: 5s.
	BodyTimeout caddy.Duration `json:"body_timeout,omitempty"`

	// UpgradeHashes rewrites a user's stored password with Django's
	// current default (pbkdf2_sha256, 1,000,000 iterations) after a
	// successful login with an older hasher or iteration count, as Django
	// itself does. Off by default, since the database may belong to a
	// Django project that manages its own hashes.
	UpgradeHashes bool `json:"upgrade_hashes,omitempty"`

	throttle *throttle.Throttle
}

// defaultMaxBody limits login request bodies.
const defaultMaxBody = 64 << 10

// defaultBodyTimeout bounds the time a client may take to send a login
// body.
const defaultBodyTimeout = 5 * time.Second

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
		if wait := t.Allow(h.clientIP(r)); wait > 0 {
			detail, retry := drf.ThrottledDetail(wait)
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
	body, err := h.readBody(w, r, maxBody+1)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		w.Header().Set("Connection", "close")
		writeJSON(w, http.StatusRequestTimeout, indent, jsonPair{"detail", "The request body was not received in time."})
		return nil
	}
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
	if errors.Is(err, errHashQueueFull) {
		h.logger.Warn("login refused: every password-hashing slot is busy and the queue is full",
			zap.String("remote_ip", h.clientIP(r)))
		w.Header()["Retry-After"] = []string{unavailableRetryWait}
		writeJSON(w, http.StatusServiceUnavailable, indent, jsonPair{"detail", detailUnavailable})
		return nil
	}
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
// runs before the active check, and an outdated hash is upgraded when
// configured. An unknown user takes the same path as a known one, checked
// against a stored value of the default hasher and cost that no password
// matches, so that the time an answer takes does not tell which usernames
// exist. The check, and the re-hash of an upgrade, run in one of the
// process's hashing slots; each store call has its own time limit.
func (h *TokenAuth) authenticate(ctx context.Context, username, raw string) (store.User, bool, error) {
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	user, err := h.store.User(sctx, username)
	cancel()
	known := err == nil
	encoded := user.Password
	switch {
	case errors.Is(err, store.ErrNoUser):
		encoded = password.DummyEncoded()
	case err != nil:
		return store.User{}, false, err
	}
	var ok, mustUpdate bool
	var upgraded string
	err = h.hashers.run(ctx, func() {
		ok, mustUpdate = password.Check(raw, encoded)
		if ok && known && mustUpdate && h.Login.UpgradeHashes {
			upgraded, _ = makePassword(raw, 0)
		}
	})
	if err != nil {
		return store.User{}, false, err
	}
	if upgraded != "" {
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		if err := h.store.SetPassword(sctx, user.Username, upgraded); err != nil {
			h.logger.Warn("upgrading password hash failed", zap.String("user_id", user.ID), zap.Error(err))
		}
		cancel()
	}
	return user, ok && known && user.Active, nil
}

// makePassword encodes a password with Django's default hasher (a variable
// so that tests can see where it runs).
var makePassword = password.Make

// readBody reads up to limit bytes of the request body within the login's
// body timeout (or the server's read timeout, if that is shorter), through
// the connection's read deadline: a client that drips its body is cut off
// with os.ErrDeadlineExceeded. Where the connection has no deadline to set
// (HTTP/3, tests' recorders), the body is read as is.
func (h *TokenAuth) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	timeout := time.Duration(h.Login.BodyTimeout)
	if srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv != nil {
		if rt := time.Duration(srv.ReadTimeout); rt > 0 && rt < timeout {
			timeout = rt
		}
	}
	if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(r.Body, limit))
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
		h.cache.Forget(key)
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
// respected), for throttling. The first request that comes through a
// trusted proxy on a server without trusted_proxies_strict logs a warning:
// Caddy then takes the leftmost X-Forwarded-For entry, which the client
// writes itself when the proxy appends to the header, so a client could
// pick a fresh budget for every request.
func (h *TokenAuth) clientIP(r *http.Request) string {
	if !h.warnedProxies.Load() {
		if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
			if srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv != nil &&
				srv.TrustedProxiesStrict == 0 && h.warnedProxies.CompareAndSwap(false, true) {
				h.logger.Warn("throttling by client IP behind trusted_proxies without trusted_proxies_strict: " +
					"behind a proxy that appends to X-Forwarded-For, clients choose their own IP and budget; " +
					"set trusted_proxies_strict in the server's options")
			}
		}
	}
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	return r.RemoteAddr
}
