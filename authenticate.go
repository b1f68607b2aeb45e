package tokenauth

import (
	"errors"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokenauth/caddy-tokenauth/internal/drf"
	"github.com/tokenauth/caddy-tokenauth/store"
)

// outcome is what the token check made of a request.
type outcome uint8

const (
	// authOK: a key of an active user; key and id are set.
	authOK outcome = iota
	// authAnonymous: no token credentials (no header, another scheme).
	authAnonymous
	// authRefused: refused with DRF's error in err: a malformed header,
	// or a key the store refused (unknown, inactive user).
	authRefused
	// authThrottled: a refused key past the client's failure budget;
	// wait is the time until the window frees up.
	authThrottled
	// authUnavailable: the store could not answer; err says why.
	authUnavailable
	// authForbidden: an active user's key that a requirement refuses
	// (permissions.go); key and id are set, err is the 403's.
	authForbidden
)

// authResult is the answer of authenticate.
type authResult struct {
	outcome outcome
	key     string
	id      cachedIdentity
	err     error // a *drf.Error when refused, the store's error when unavailable
	wait    time.Duration
}

// authenticate is DRF's TokenAuthentication.authenticate: the header, the
// key's shape, the lookup, the active check. A key the store refuses counts
// against the client's failure budget; past it the answer is authThrottled,
// and the request is not counted again until the window frees up (DRF's
// throttles count only the requests they let through).
func (h *TokenAuth) authenticate(r *http.Request) authResult {
	key, res := drf.ParseAuthorization(r.Header["Authorization"], h.Keyword)
	switch {
	case res == drf.Anonymous:
		return authResult{outcome: authAnonymous}
	case !res.HasKey():
		return authResult{outcome: authRefused, err: res.Err()}
	case h.anyKey, h.knox != nil: // loadKnox checks a knox key's shape
	case res != drf.KeyHex40:
		return h.refuseToken(r, drf.ErrInvalidToken)
	}
	id, err := h.lookup(r, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return h.refuseToken(r, drf.ErrInvalidToken)
	case err != nil:
		return authResult{outcome: authUnavailable, err: err}
	}
	var tok *tokenState
	if h.knox != nil || h.maxAge > 0 {
		tok = id.token()
	}
	if h.refresh != nil && tok != nil {
		h.touch(tok) // knox refreshes before it checks is_active
	}
	if !id.active(tok) {
		return h.refuseToken(r, drf.ErrInactive)
	}
	return authResult{outcome: authOK, key: key, id: id}
}

// lookup asks the cache, or the store when the cache is off. A key the
// cache answers (found or unknown) counts as a hit, any other as a miss.
func (h *TokenAuth) lookup(r *http.Request, key string) (cachedIdentity, error) {
	if h.cache != nil {
		if id, known, found := h.cache.Get(key); known {
			cacheHits.Inc()
			if !found {
				return id, store.ErrNotFound
			}
			return id, nil
		}
		cacheMisses.Inc()
		return h.cache.Lookup(r.Context(), key, h.load)
	}
	return h.load(r.Context(), key)
}

// refuseToken refuses a key the store refused, or throttles it when the
// client is over its failure budget.
func (h *TokenAuth) refuseToken(r *http.Request, e *drf.Error) authResult {
	if h.failures != nil {
		if wait := h.failures.Allow(h.clientIP(r)); wait > 0 {
			throttledFailure.Inc()
			return authResult{outcome: authThrottled, wait: wait}
		}
	}
	return authResult{outcome: authRefused, err: e}
}

// setIdentity gives the request the identity's placeholders.
func setIdentity(r *http.Request, id cachedIdentity) {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Map(id.vars)
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
