package tokenauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

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

// defaultMaxBody limits login request bodies; maxMaxBody is the largest
// limit accepted, since a body is read into memory whole.
const (
	defaultMaxBody = 64 << 10
	maxMaxBody     = 1 << 30
)

// defaultBodyTimeout bounds the time a client may take to send a login
// body.
const defaultBodyTimeout = 5 * time.Second

// storeTimeout bounds the store calls of login and logout.
const storeTimeout = 5 * time.Second

// validate holds the rules of the login settings.
func (l *Login) validate() error {
	if !strings.HasPrefix(l.Path, "/") {
		return fmt.Errorf("login path %q must start with /", l.Path)
	}
	if l.MaxBody < 0 || l.MaxBody > maxMaxBody {
		return fmt.Errorf("login max_body %d: want a size up to 1GiB", l.MaxBody)
	}
	if l.BodyTimeout < 0 {
		return fmt.Errorf("login body_timeout %v: want a positive duration", time.Duration(l.BodyTimeout))
	}
	if l.Throttle != "" {
		if _, err := drf.ParseRate(l.Throttle); err != nil {
			return fmt.Errorf("login throttle: %w", err)
		}
	}
	return nil
}

// serveLogin answers DRF's obtain_auth_token: content negotiation, the
// token check (a refused token is refused here too), the throttle, the
// method, the body and its fields, the password check, the token. With
// tokens knox it answers as knox's login views (knoxlogin.go).
func (h *TokenAuth) serveLogin(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Allow", drf.LoginAllow)
	ok, indent := drf.Negotiate(r)
	if !ok {
		drf.WriteJSON(w, http.StatusNotAcceptable, -1, drf.Member{Key: "detail", Value: drf.MsgNotAcceptable})
		return nil
	}
	if h.knox != nil {
		return h.serveKnoxLogin(w, r, indent)
	}
	a := h.authenticate(r)
	countRequest(&a, true)
	switch a.outcome {
	case authOK:
		setIdentity(r, a.id)
	case authAnonymous:
		anonymous(r)
	default:
		return h.render(w, a, indent)
	}
	if h.loginThrottled(w, r, indent) || !h.loginMethod(w, r, indent, drf.WriteLoginOptions) {
		return nil
	}
	user, answered := h.bodyCredentials(w, r, indent)
	if answered {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	key, err := h.logins.TokenFor(ctx, user.Username, false)
	if err == nil && h.maxAge > 0 {
		key, err = h.renewIfOld(ctx, user, key)
	}
	if err != nil {
		loginUnavailable.Inc()
		return h.unavailable(w, err)
	}
	loginSuccess.Inc()
	drf.WriteJSON(w, http.StatusOK, indent, drf.Member{Key: "token", Value: key})
	return nil
}

// renewIfOld replaces a token that max_age refuses: login hands out a
// token that works, where DRF's get_or_create would return the old one.
func (h *TokenAuth) renewIfOld(ctx context.Context, user store.User, key string) (string, error) {
	id, err := h.store.Lookup(ctx, key)
	if err != nil || time.Since(id.Created) < h.maxAge {
		return key, err
	}
	if h.cache != nil {
		defer h.cache.Forget(key)
	}
	return h.logins.TokenFor(ctx, user.Username, true)
}

// loginThrottled answers 429 when the client is past the login throttle.
func (h *TokenAuth) loginThrottled(w http.ResponseWriter, r *http.Request, indent int) bool {
	t := h.Login.throttle
	if t == nil {
		return false
	}
	wait := t.Allow(h.clientIP(r))
	if wait <= 0 {
		return false
	}
	throttledLogin.Inc()
	loginThrottled.Inc()
	detail, retry := drf.ThrottledDetail(wait)
	w.Header().Set("Retry-After", retry)
	drf.WriteJSON(w, http.StatusTooManyRequests, indent, drf.Member{Key: "detail", Value: detail})
	return true
}

// loginMethod lets POST through and answers the others: OPTIONS with the
// view's metadata, any other method 405.
func (h *TokenAuth) loginMethod(w http.ResponseWriter, r *http.Request, indent int, options func(http.ResponseWriter, int)) bool {
	switch r.Method {
	case http.MethodPost:
		return true
	case http.MethodOptions:
		options(w, indent)
	default:
		drf.WriteJSON(w, http.StatusMethodNotAllowed, indent, drf.Member{Key: "detail", Value: drf.MethodNotAllowed(r.Method)})
	}
	return false
}

// bodyCredentials is AuthTokenSerializer on the request body: the body
// read within its limits, parsed, its fields validated, the password
// checked. Every refusal is answered here (answered is true then).
func (h *TokenAuth) bodyCredentials(w http.ResponseWriter, r *http.Request, indent int) (user store.User, answered bool) {
	maxBody := h.Login.MaxBody
	body, err := h.readBody(w, r, maxBody+1)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		loginInvalid.Inc()
		w.Header().Set("Connection", "close")
		drf.WriteJSON(w, http.StatusRequestTimeout, indent, drf.Member{Key: "detail", Value: drf.MsgBodyTimeout})
		return user, true
	}
	if err != nil {
		loginInvalid.Inc()
		drf.WriteJSON(w, http.StatusBadRequest, indent, drf.Member{Key: "detail", Value: drf.MsgBodyUnread})
		return user, true
	}
	if int64(len(body)) > maxBody {
		loginInvalid.Inc()
		drf.WriteJSON(w, http.StatusRequestEntityTooLarge, indent, drf.Member{Key: "detail", Value: drf.BodyTooLarge(strconv.FormatInt(maxBody, 10))})
		return user, true
	}

	p := drf.ParseLoginBody(r, body)
	if p.Status != 0 || p.NonField != "" {
		loginInvalid.Inc()
	}
	switch {
	case p.Status != 0:
		drf.WriteJSON(w, p.Status, indent, drf.Member{Key: "detail", Value: p.Detail})
		return user, true
	case p.NonField != "":
		drf.WriteJSON(w, http.StatusBadRequest, indent, drf.Member{Key: "non_field_errors", Value: []string{p.NonField}})
		return user, true
	}
	username, uerr := p.Username.Validate(true)
	pw, perr := p.Password.Validate(false)
	if uerr != nil || perr != nil {
		loginInvalid.Inc()
		var errs []drf.Member
		if uerr != nil {
			errs = append(errs, drf.Member{Key: "username", Value: uerr})
		}
		if perr != nil {
			errs = append(errs, drf.Member{Key: "password", Value: perr})
		}
		drf.WriteJSON(w, http.StatusBadRequest, indent, errs...)
		return user, true
	}

	user, ok, err := h.checkPassword(r.Context(), username, pw)
	if err != nil {
		h.passwordCheckFailed(w, r, indent, err)
		return user, true
	}
	if !ok {
		loginBadCredentials.Inc()
		drf.WriteJSON(w, http.StatusBadRequest, indent, drf.Member{Key: "non_field_errors", Value: []string{drf.MsgBadLogin}})
		return user, true
	}
	return user, false
}

// passwordCheckFailed answers a password check that could not run: 503,
// with the hashing queue full or the store unavailable.
func (h *TokenAuth) passwordCheckFailed(w http.ResponseWriter, r *http.Request, indent int, err error) {
	loginUnavailable.Inc()
	if errors.Is(err, errHashQueueFull) {
		h.logger.Warn("login refused: every password-hashing slot is busy and the queue is full",
			zap.String("remote_ip", h.clientIP(r)))
		w.Header()["Retry-After"] = []string{drf.UnavailableRetryAfter}
		drf.WriteJSON(w, http.StatusServiceUnavailable, indent, drf.Member{Key: "detail", Value: drf.DetailUnavailable})
		return
	}
	_ = h.unavailable(w, err)
}

// checkPassword is Django's ModelBackend.authenticate: the password check
// runs before the active check, and an outdated hash is upgraded when
// configured. An unknown user takes the same path as a known one, checked
// against a stored value of the default hasher and cost that no password
// matches, so that the time an answer takes does not tell which usernames
// exist. The check, and the re-hash of an upgrade, run in one of the
// process's hashing slots; each store call has its own time limit.
func (h *TokenAuth) checkPassword(ctx context.Context, username, raw string) (store.User, bool, error) {
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	user, err := h.logins.UserByName(sctx, username)
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
		if err := h.logins.SetPassword(sctx, user.Username, upgraded); err != nil {
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

// serveLogout deletes the caller's token, or with all every token of its
// user (knox's logoutall): 204 with no body. The cache forgets the token at
// once; after logout_all it forgets everything, since it cannot tell which
// of its keys were that user's. Other instances learn of it through the
// store's change push.
func (h *TokenAuth) serveLogout(w http.ResponseWriter, r *http.Request, key string, id cachedIdentity, all bool) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", drf.LoginAllow)
		drf.WriteJSON(w, http.StatusMethodNotAllowed, -1, drf.Member{Key: "detail", Value: drf.MethodNotAllowed(r.Method)})
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	var err error
	switch {
	case all:
		_, err = h.knox.KnoxDeleteUser(ctx, id.token().userID)
	case h.knox != nil:
		_, err = h.knox.KnoxDelete(ctx, id.token().digest)
	default:
		_, err = h.logins.DeleteTokenByKey(ctx, key)
	}
	if err != nil {
		return h.unavailable(w, err)
	}
	if h.cache != nil {
		if all {
			h.cache.Flush()
		} else {
			h.cache.Forget(key)
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
