// Package tokenauth is a Caddy HTTP handler that brings Django REST
// Framework's token authentication to the web server: clients send
// "Authorization: Token <key>", and the key is checked in-process against
// Django's auth_user and authtoken_token tables before the request reaches
// the next handler.
package tokenauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokenauth/caddy-tokenauth/internal/drf"
	"github.com/tokenauth/caddy-tokenauth/internal/throttle"
	"github.com/tokenauth/caddy-tokenauth/store"
	_ "github.com/tokenauth/caddy-tokenauth/store/postgres" // registers the postgres store
	_ "github.com/tokenauth/caddy-tokenauth/store/sqlite"   // registers the sqlite store
)

func init() {
	caddy.RegisterModule(TokenAuth{})
}

// TokenAuth checks Django REST Framework tokens.
//
// A request whose Authorization header carries "<keyword> <key>" for an
// active user is passed on with these placeholders set:
//
//	{http.auth.user.id}        auth_user.id (the access log's user_id)
//	{http.auth.user.username}  auth_user.username
//
// Any other request is answered as DRF answers it: 401 with
// "WWW-Authenticate: <keyword>", "Content-Type: application/json" and a
// compact {"detail":"…"} body carrying DRF's message. A request without
// token credentials passes only when Optional is set. When the store cannot
// answer, the request gets 503 with Retry-After and is never let through.
type TokenAuth struct {
	// StoreRaw is the database holding Django's auth_user and
	// authtoken_token tables, chosen by its "kind": "sqlite" or "postgres".
	// Default: the embedded SQLite store at
	// <caddy data dir>/token_auth/tokens.sqlite3, created on first use.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=http.token_auth.stores inline_key=kind"`

	// Keyword is the scheme word before the key, matched
	// ASCII-case-insensitively and sent back in WWW-Authenticate, as DRF's
	// TokenAuthentication.keyword. Default: "Token".
	Keyword string `json:"keyword,omitempty"`

	// Optional lets requests without token credentials through
	// anonymously, as DRF's AllowAny permission does; a Token header that
	// is malformed or names an unknown key is still refused with 401.
	// Default: false (credentials required).
	Optional bool `json:"optional,omitempty"`

	// NoChallenge answers 403 without WWW-Authenticate instead of 401, as
	// DRF does when a non-challenge scheme such as SessionAuthentication
	// comes first in DEFAULT_AUTHENTICATION_CLASSES. The bodies are the
	// same. Default: false.
	NoChallenge bool `json:"no_challenge,omitempty"`

	// Login answers DRF's obtain_auth_token endpoint at its path. Default:
	// none.
	Login *Login `json:"login,omitempty"`

	// Logout is the path where an authenticated POST deletes the caller's
	// token and gets 204 with no body. Default: none.
	Logout string `json:"logout,omitempty"`

	// FailureThrottle limits, per client IP, the requests that present a
	// token the store refuses (unknown key, inactive user), in DRF's rate
	// syntax (20/min). Past it such a request gets 429 with Retry-After
	// instead of 401 until the window frees up; a valid token from the same
	// IP still passes, so that clients behind one NAT or proxy cannot lock
	// each other out. Default: none.
	FailureThrottle string `json:"failure_throttle,omitempty"`

	// Cache keeps lookups in memory. Default: on, with the defaults of
	// Cache; {"off": true} queries the store on every request.
	Cache *Cache `json:"cache,omitempty"`

	// KeyFormat is what a key must look like to be looked up: "hex40"
	// (40 lowercase hex characters, as DRF generates keys) answers any
	// other key "Invalid token." without a store query; "any" looks up
	// every key, as DRF does, for databases with custom keys. Default:
	// "hex40".
	KeyFormat string `json:"key_format,omitempty"`

	store     store.Store
	cache     *identityCache
	cacheKey  string
	stopWatch func()
	anyKey    bool
	failures  *throttle.Throttle
	hashers   *hashLimiter
	// set once a throttled request came through a trusted proxy on a
	// server without trusted_proxies_strict, and the warning was logged
	warnedProxies *atomic.Bool
	// the usage-pool names of the throttles, released at Cleanup
	failuresKey, loginKey string
	status                int
	challenge             string
	logger                *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (TokenAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.token_auth",
		New: func() caddy.Module { return new(TokenAuth) },
	}
}

// defaultStore is the embedded SQLite store: no path means the data dir.
var defaultStore = json.RawMessage(`{"kind":"sqlite"}`)

// Provision loads the store and fills in the defaults.
func (h *TokenAuth) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Keyword == "" {
		h.Keyword = "Token"
	}
	if err := validKeyword(h.Keyword); err != nil {
		return err
	}
	h.status, h.challenge = http.StatusUnauthorized, h.Keyword
	if h.NoChallenge {
		h.status, h.challenge = http.StatusForbidden, ""
	}
	if err := h.provisionLogin(); err != nil {
		return err
	}
	if h.StoreRaw == nil {
		h.StoreRaw = defaultStore
	}
	switch h.KeyFormat {
	case "", "hex40":
	case "any":
		h.anyKey = true
	default:
		return fmt.Errorf("key_format %q: want hex40 or any", h.KeyFormat)
	}
	storeKey := string(h.StoreRaw) // LoadModule clears it
	mod, err := ctx.LoadModule(h, "StoreRaw")
	if err != nil {
		return fmt.Errorf("loading token store: %w", err)
	}
	s, ok := mod.(store.Store)
	if !ok {
		return fmt.Errorf("token store module %T is not a store.Store", mod)
	}
	h.store = s
	return h.provisionCache(storeKey)
}

// provisionLogin checks the login, logout and throttle settings.
func (h *TokenAuth) provisionLogin() error {
	h.warnedProxies = new(atomic.Bool)
	if h.FailureThrottle != "" {
		r, err := drf.ParseRate(h.FailureThrottle)
		if err != nil {
			return fmt.Errorf("failure_throttle: %w", err)
		}
		h.failuresKey = fmt.Sprintf("failures %d/%v", r.Num, r.Period)
		if h.failures, err = loadThrottle(h.failuresKey, r); err != nil {
			return err
		}
	}
	if h.Logout != "" && !strings.HasPrefix(h.Logout, "/") {
		return fmt.Errorf("logout path %q must start with /", h.Logout)
	}
	if h.Login == nil {
		return nil
	}
	h.hashers = passwordHashers()
	if !strings.HasPrefix(h.Login.Path, "/") {
		return fmt.Errorf("login path %q must start with /", h.Login.Path)
	}
	if h.Login.Path == h.Logout {
		return fmt.Errorf("login and logout share the path %s", h.Logout)
	}
	if h.Login.MaxBody <= 0 {
		h.Login.MaxBody = defaultMaxBody
	}
	if h.Login.BodyTimeout < 0 {
		return fmt.Errorf("login body_timeout must not be negative")
	}
	if h.Login.BodyTimeout == 0 {
		h.Login.BodyTimeout = caddy.Duration(defaultBodyTimeout)
	}
	if h.Login.Throttle != "" {
		r, err := drf.ParseRate(h.Login.Throttle)
		if err != nil {
			return fmt.Errorf("login throttle: %w", err)
		}
		h.loginKey = fmt.Sprintf("login %s %d/%v", h.Login.Path, r.Num, r.Period)
		if h.Login.throttle, err = loadThrottle(h.loginKey, r); err != nil {
			return err
		}
	}
	return nil
}

// validKeyword accepts what can stand as the first word of an
// Authorization header: one or more visible ASCII characters.
func validKeyword(k string) error {
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] >= 0x7f {
			return fmt.Errorf("keyword %q: want visible ASCII characters without spaces", k)
		}
	}
	return nil
}

// ServeHTTP authenticates the request and calls next, or answers as DRF.
func (h *TokenAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	onLogin := h.Login != nil && r.URL.Path == h.Login.Path
	indent := -1
	if onLogin {
		// DRF negotiates the response type before it authenticates.
		w.Header().Set("Allow", loginAllow)
		ok, i := negotiate(r)
		if !ok {
			writeJSON(w, http.StatusNotAcceptable, -1, jsonPair{"detail", msgNotAccepted})
			return nil
		}
		indent = i
	}

	key, hex := hexKey(r.Header["Authorization"], h.Keyword)
	if !hex {
		var res headerResult
		key, res = parseAuthorization(r.Header["Authorization"], h.Keyword)
		switch res {
		case headerKey:
		case headerAnonymous:
			if onLogin {
				anonymous(r)
				return h.serveLogin(w, r, indent)
			}
			if h.Optional {
				anonymous(r)
				return next.ServeHTTP(w, r)
			}
			h.refuse(w, &errNotProvided, indent)
			return nil
		default:
			h.refuse(w, headerErrors[res], indent)
			return nil
		}
	}

	if !hex && !h.anyKey && !isHex40(key) {
		h.refuseToken(w, r, &errInvalidToken, indent)
		return nil
	}
	id, err := h.lookup(r, key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			h.refuseToken(w, r, &errInvalidToken, indent)
			return nil
		}
		return h.unavailable(w, err)
	}
	if !id.active() {
		h.refuseToken(w, r, &errInactive, indent)
		return nil
	}

	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Map(id.vars)
	switch {
	case onLogin:
		return h.serveLogin(w, r, indent)
	case h.Logout != "" && r.URL.Path == h.Logout:
		return h.serveLogout(w, r, key)
	}
	return next.ServeHTTP(w, r)
}

// Cleanup stops the cache's subscription and releases what the handler
// shares with others: the cache and the throttles.
func (h *TokenAuth) Cleanup() error {
	if h.stopWatch != nil {
		h.stopWatch()
		h.stopWatch = nil
	}
	var errs []error
	for _, pk := range []struct {
		pool *caddy.UsagePool
		key  *string
	}{{caches, &h.cacheKey}, {throttles, &h.failuresKey}, {throttles, &h.loginKey}} {
		if *pk.key != "" {
			_, err := pk.pool.Delete(*pk.key)
			errs = append(errs, err)
			*pk.key = "" // a second Cleanup releases nothing twice
		}
	}
	return errors.Join(errs...)
}

// lookup asks the cache, or the store when the cache is off.
func (h *TokenAuth) lookup(r *http.Request, key string) (cachedIdentity, error) {
	if h.cache != nil {
		return h.cache.Lookup(r.Context(), key, h.load)
	}
	id, err := h.store.Lookup(r.Context(), key)
	return newCachedIdentity(id), err
}

// refuseToken answers a token the store refused and counts it against the
// client's failure budget; a client over its budget gets 429 instead, and
// is not counted again until the window frees up (DRF's throttles count
// only the requests they let through).
func (h *TokenAuth) refuseToken(w http.ResponseWriter, r *http.Request, e *drfError, indent int) {
	if h.failures != nil {
		if wait := h.failures.Allow(h.clientIP(r)); wait > 0 {
			detail, retry := drf.ThrottledDetail(wait)
			w.Header().Set("Retry-After", retry)
			writeJSON(w, http.StatusTooManyRequests, indent, jsonPair{"detail", detail})
			return
		}
	}
	h.refuse(w, e, indent)
}

// anonymous makes the identity placeholders known and empty on a request
// let through without credentials, so that `header_up X-Remote-User
// {http.auth.user.username}` sends an empty value, never the placeholder's
// text or a value the client sent. An identity set by an earlier handler is
// kept.
func anonymous(r *http.Request) {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if _, ok := repl.Get(placeholderUserID); !ok {
		repl.Map(anonymousVars)
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*TokenAuth)(nil)
	_ caddy.CleanerUpper          = (*TokenAuth)(nil)
	_ caddyhttp.MiddlewareHandler = (*TokenAuth)(nil)
)
