package tokenauth

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// Cache configures the in-process cache of lookups.
type Cache struct {
	// Off disables the cache: every request queries the store, as DRF
	// does.
	Off bool `json:"off,omitempty"`

	// TTL is how long a found identity is trusted without asking the
	// store again. Where the store pushes changes (PostgreSQL with the
	// notify triggers, SQLite watching its file) a change flushes the
	// cache at once, and TTL only bounds staleness if a push is lost.
	// Default: 30s where changes are pushed, 5s where they are not.
	TTL caddy.Duration `json:"ttl,omitempty"`

	// NegativeTTL is how long an unknown key is remembered as unknown.
	// Default: 5s.
	NegativeTTL caddy.Duration `json:"negative_ttl,omitempty"`

	// Size bounds the identities kept. Unknown keys are bounded apart, by
	// the same number, so a flood of random keys never evicts a valid
	// entry. An entry holds a copy of its key, never the request's header,
	// and a key longer than 256 bytes (possible only with key_format any)
	// is never cached. Expired entries are swept within a second. Default:
	// 100000.
	Size int `json:"size,omitempty"`
}

// Cache defaults.
const (
	defaultPushedTTL   = 30 * time.Second
	defaultPolledTTL   = 5 * time.Second
	defaultNegativeTTL = 5 * time.Second
	defaultCacheSize   = 100_000
)

// cachedIdentity is a found identity, as the cache keeps it. Its
// placeholders are answered by a replacer provider made once per identity,
// so that a cache hit gives the request its identity without allocating:
// Replacer.Set would allocate the request's fresh map of static values,
// where appending a provider (as Caddy's own map handler does) fits the
// room Caddy's providers leave. A value an earlier handler set with
// Replacer.Set is answered first.
//
// It is one pointer, so that an identity stays under 256 bytes in the
// cache: an inactive user of a DRF token has no provider (nil), and a
// token with an expiry keeps its state in the provider's closure, which
// has room for it in its size class (see token).
type cachedIdentity struct {
	vars caddy.ReplacerFunc // {http.auth.user.id} and {http.auth.user.username}
}

// tokenState is what a token with an expiry (knox, or DRF under max_age)
// adds to its identity.
type tokenState struct {
	// until is when the cache must stop serving the token, unix ns (0:
	// never): a knox token's expiry when it was loaded, or a DRF token's
	// created + max_age.
	until int64
	// active is auth_user.is_active: knox refreshes an inactive user's
	// token before it refuses it, so its identity is kept.
	active bool
	// The knox row: its digest (logout deletes by it), its user, and its
	// expiry, which auto-refresh moves (unix ns; 0: never).
	digest  string
	userID  string
	created int64
	expiry  atomic.Int64
}

// Placeholder names of the identity.
const (
	placeholderUserID   = "http.auth.user.id"
	placeholderUsername = "http.auth.user.username"
	// tokenStateKey is the provider's key of the token state: not a name
	// a placeholder can have, and asked only by token.
	tokenStateKey = "\x00token_auth.token_state"
)

// newCachedIdentity makes the cache's value of a found identity; tok is
// nil for a DRF token without max_age.
func newCachedIdentity(id store.Identity, tok *tokenState) cachedIdentity {
	if tok == nil {
		if !id.Active {
			return cachedIdentity{}
		}
		return cachedIdentity{vars: identityVars(id.ID, id.Username)}
	}
	tok.active = id.Active
	idAny, nameAny, tokAny := any(id.ID), any(id.Username), any(tok)
	return cachedIdentity{vars: func(key string) (any, bool) {
		switch key {
		case placeholderUserID:
			return idAny, true
		case placeholderUsername:
			return nameAny, true
		case tokenStateKey:
			return tokAny, true
		}
		return nil, false
	}}
}

// identityVars answers the identity placeholders with the values boxed
// once, so that reading them (the access log's user_id) allocates nothing.
func identityVars(userID, username string) caddy.ReplacerFunc {
	idAny, nameAny := any(userID), any(username)
	return func(key string) (any, bool) {
		switch key {
		case placeholderUserID:
			return idAny, true
		case placeholderUsername:
			return nameAny, true
		}
		return nil, false
	}
}

// anonymousVars answers the identity placeholders of a request let through
// without credentials: known, and empty (not staff, in no group; see
// permsVars).
var anonymousVars = permsVars("", "", nil, anonymousPerms)

// token is the identity's token state, or nil for a DRF token without
// max_age (and a DRF token's inactive user).
func (ci *cachedIdentity) token() *tokenState {
	if ci.vars == nil {
		return nil
	}
	v, _ := ci.vars(tokenStateKey)
	t, _ := v.(*tokenState)
	return t
}

// active reports whether the user may authenticate (is_active); tok is
// the identity's token state, as token gives it, or nil.
func (ci *cachedIdentity) active(tok *tokenState) bool {
	return ci.vars != nil && (tok == nil || tok.active)
}

// bound is the cache's expiry of a value (internal/cache SetBound).
func bound(v *cachedIdentity) int64 {
	if t := v.token(); t != nil {
		return t.until
	}
	return 0
}

// validate holds the rules of the cache settings.
func (c *Cache) validate() error {
	switch {
	case c.TTL < 0:
		return fmt.Errorf("cache ttl %v: want a positive duration", time.Duration(c.TTL))
	case c.NegativeTTL < 0:
		return fmt.Errorf("cache negative_ttl %v: want a positive duration", time.Duration(c.NegativeTTL))
	case c.Size < 0:
		return fmt.Errorf("cache size %d: want a positive number of entries", c.Size)
	}
	if c.Off && (c.TTL != 0 || c.NegativeTTL != 0 || c.Size != 0) {
		return fmt.Errorf("cache: off takes no ttl, negative_ttl or size")
	}
	return nil
}
