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
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokenauth/caddy-tokenauth/internal/drf"
	"github.com/tokenauth/caddy-tokenauth/internal/throttle"
	"github.com/tokenauth/caddy-tokenauth/internal/writeback"
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
//
// Refusals are written by the handler itself rather than returned as a
// caddyhttp.Error, because DRF's clients see exact bytes: the status, the
// WWW-Authenticate challenge, the Content-Type without charset and the
// compact body. So none of token_auth's own answers (401, 403, 429, 503,
// and the login endpoint's) go through handle_errors; an error returned by
// a later handler still does.
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

	// ReadOnly, with Optional, lets only GET, HEAD and OPTIONS through
	// without credentials, as DRF's IsAuthenticatedOrReadOnly: any other
	// method gets 401 "Authentication credentials were not provided."
	// (403 under no_challenge). Default: false.
	ReadOnly bool `json:"read_only,omitempty"`

	// Require lists what an authenticated user must be or have, as a
	// view's permission_classes: every requirement must hold, each when
	// any of its alternatives does (see Requirement). A user who fails
	// one gets 403. Groups and permissions are read from Django's tables
	// with the identity, in one more query per user, and cached with it.
	// Default: none (any active user's key passes).
	Require []Requirement `json:"require,omitempty"`

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

	// LogoutAll (knox tokens) is the path where an authenticated POST
	// deletes every token of the caller's user and gets 204 with no body,
	// as knox's LogoutAllView. Default: none.
	LogoutAll string `json:"logout_all,omitempty"`

	// Tokens chooses DRF's tokens (authtoken_token) or knox's
	// (knox_authtoken) and their expiry rules. Default: DRF's, never
	// expiring.
	Tokens *Tokens `json:"tokens,omitempty"`

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

	store  store.Store
	perms  *handlerPerms // the requirements, compiled (permissions.go)
	logins store.Logins  // the store, when login or logout is configured
	knox   store.Knox    // the store, with tokens knox
	maxAge time.Duration
	// tokens knox: the background writes of cleanups and refreshes
	cleanup, refresh *writeback.Queue[string, time.Time]
	cache            *identityCache
	cacheKey         string
	stopWatch        func()
	anyKey           bool
	failures         *throttle.Throttle
	hashers          *hashLimiter
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

// Provision checks the config, fills in the defaults and loads the store.
func (h *TokenAuth) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := h.validate(); err != nil {
		return err
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	if h.Keyword == "" {
		h.Keyword = "Token"
	}
	h.status, h.challenge = http.StatusUnauthorized, h.Keyword
	if h.NoChallenge {
		h.status, h.challenge = http.StatusForbidden, ""
	}
	h.anyKey = h.KeyFormat == "any"
	if err := h.provisionLogin(); err != nil {
		return err
	}
	if h.StoreRaw == nil {
		h.StoreRaw = defaultStore
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
	if err := h.provisionKnox(mod); err != nil {
		return err
	}
	if err := h.checkTokenTable(mod); err != nil {
		return err
	}
	if h.Login != nil || (h.Logout != "" && h.knox == nil) {
		if h.logins, ok = mod.(store.Logins); !ok {
			return fmt.Errorf("token store %s cannot serve login/logout: it does not implement store.Logins", caddy.GetModuleName(mod))
		}
	}
	if err := h.provisionPermissions(storeKey); err != nil {
		return err
	}
	return h.provisionCache(storeKey)
}

// validate holds every rule of the config; the Caddyfile and the JSON go
// through it alike. It changes nothing: empty values stand for the
// defaults.
func (h *TokenAuth) validate() error {
	if h.Keyword != "" && !drf.ValidKeyword(h.Keyword) {
		return fmt.Errorf("keyword %q: want visible ASCII characters without spaces", h.Keyword)
	}
	switch h.KeyFormat {
	case "", "hex40", "any":
	default:
		return fmt.Errorf("key_format %q: want hex40 or any", h.KeyFormat)
	}
	if h.FailureThrottle != "" {
		if _, err := drf.ParseRate(h.FailureThrottle); err != nil {
			return fmt.Errorf("failure_throttle: %w", err)
		}
	}
	if h.Logout != "" && !strings.HasPrefix(h.Logout, "/") {
		return fmt.Errorf("logout path %q must start with /", h.Logout)
	}
	if h.Login != nil {
		if err := h.Login.validate(); err != nil {
			return err
		}
		if h.Login.Path == h.Logout {
			return fmt.Errorf("login and logout share the path %s", h.Logout)
		}
	}
	if h.LogoutAll != "" {
		switch {
		case !strings.HasPrefix(h.LogoutAll, "/"):
			return fmt.Errorf("logout_all path %q must start with /", h.LogoutAll)
		case !h.Tokens.knox():
			return fmt.Errorf("logout_all needs tokens knox (a DRF user has one token: use logout)")
		case h.LogoutAll == h.Logout || (h.Login != nil && h.LogoutAll == h.Login.Path):
			return fmt.Errorf("logout_all shares its path %s with login or logout", h.LogoutAll)
		}
	}
	if h.Tokens != nil {
		if err := h.Tokens.validate(); err != nil {
			return err
		}
	}
	if err := h.validatePermissions(); err != nil {
		return err
	}
	if h.Cache != nil {
		return h.Cache.validate()
	}
	return nil
}

// provisionLogin sets up the login, logout and throttle settings.
func (h *TokenAuth) provisionLogin() error {
	h.warnedProxies = new(atomic.Bool)
	if h.FailureThrottle != "" {
		r, _ := drf.ParseRate(h.FailureThrottle)
		h.failuresKey = fmt.Sprintf("failures %d/%v", r.Num, r.Period)
		var err error
		if h.failures, err = loadThrottle(h.failuresKey, r); err != nil {
			return err
		}
	}
	if h.Login == nil {
		return nil
	}
	h.hashers = passwordHashers()
	if h.Login.MaxBody == 0 {
		h.Login.MaxBody = defaultMaxBody
	}
	if h.Login.BodyTimeout == 0 {
		h.Login.BodyTimeout = caddy.Duration(defaultBodyTimeout)
	}
	if h.Login.Throttle != "" {
		r, _ := drf.ParseRate(h.Login.Throttle)
		h.loginKey = fmt.Sprintf("login %s %d/%v", h.Login.Path, r.Num, r.Period)
		var err error
		if h.Login.throttle, err = loadThrottle(h.loginKey, r); err != nil {
			return err
		}
	}
	return nil
}

// ServeHTTP authenticates the request, then lets it through or renders the
// refusal. The login endpoint negotiates before it authenticates, as DRF's
// view does, so it runs the check itself.
func (h *TokenAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.Login != nil && r.URL.Path == h.Login.Path {
		return h.serveLogin(w, r)
	}
	if h.knox != nil && r.URL.Path != "" && (r.URL.Path == h.Logout || r.URL.Path == h.LogoutAll) {
		return h.serveKnoxLogout(w, r, r.URL.Path == h.LogoutAll)
	}
	a := h.authenticate(r)
	h.authorize(r, &a)
	countRequest(&a, h.Optional)
	switch a.outcome {
	case authOK:
		setIdentity(r, a.id)
		if h.Logout != "" && r.URL.Path == h.Logout {
			return h.serveLogout(w, r, a.key, a.id)
		}
		return next.ServeHTTP(w, r)
	case authForbidden:
		setIdentity(r, a.id) // the access log names the user refused
	case authAnonymous:
		if h.Optional {
			anonymous(r)
			return next.ServeHTTP(w, r)
		}
		a.outcome, a.err = authRefused, drf.ErrNotProvided
	}
	return h.render(w, a, -1)
}

// Cleanup stops the cache's subscription and releases what the handler
// shares with others: the cache and the throttles.
func (h *TokenAuth) Cleanup() error {
	if h.stopWatch != nil {
		h.stopWatch()
		h.stopWatch = nil
	}
	h.closeKnox()
	h.cleanupPermissions()
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

// Interface guards
var (
	_ caddy.Provisioner           = (*TokenAuth)(nil)
	_ caddy.CleanerUpper          = (*TokenAuth)(nil)
	_ caddyhttp.MiddlewareHandler = (*TokenAuth)(nil)
)
