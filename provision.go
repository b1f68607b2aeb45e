package tokenauth

import (
	"cmp"
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tokenauth/caddy-tokenauth/internal/cache"
	"github.com/tokenauth/caddy-tokenauth/internal/drf"
	"github.com/tokenauth/caddy-tokenauth/internal/throttle"
	"github.com/tokenauth/caddy-tokenauth/store"
)

// identityCache is the cache of lookups: key → identity.
type identityCache = cache.Cache[cachedIdentity]

// caches shares one cache between the handlers of a config, and across
// config reloads, that use the same store with the same cache settings; so
// a logout on one route is forgotten on all of them.
var caches = caddy.NewUsagePool()

// pooledCache lets a cache live in the usage pool: its sweeper stops when
// the last handler using it is gone.
type pooledCache struct {
	*identityCache
	// users, in a cache of knox tokens (many a user), are the permissions
	// loaded for each user, which its tokens share (permissions.go).
	users *usersCache
}

func (c pooledCache) Destruct() error {
	c.Close()
	if c.users != nil {
		c.users.Close()
	}
	return nil
}

// provisionCache sets up the handler's cache and subscribes it to the
// store's changes.
func (h *TokenAuth) provisionCache(storeKey string) error {
	c := h.Cache
	if c == nil {
		c = new(Cache)
	}
	if c.Off {
		return nil
	}
	size := cmp.Or(c.Size, defaultCacheSize)
	negTTL := cmp.Or(time.Duration(c.NegativeTTL), defaultNegativeTTL)
	w, watched := h.store.(store.Watcher)
	// Each handler subscribes through its own store module, so the shared
	// cache stays subscribed while any of its users lives.
	pushed := false
	var target atomic.Pointer[identityCache] // set once the cache exists
	if watched {
		h.stopWatch, pushed = w.Watch(func() {
			if c := target.Load(); c != nil {
				c.Flush()
				cacheFlushesChange.Inc()
			}
		}, func() bool {
			c := target.Load()
			return c == nil || c.Live()
		})
		pushed = pushed && h.permissionsPushed()
	}
	ttl := time.Duration(c.TTL)
	switch {
	case ttl > 0:
		if !pushed && ttl > defaultPolledTTL {
			h.logger.Warn("the store does not push changes: a token deleted outside this Caddy keeps working for up to the cache ttl",
				zap.Duration("ttl", ttl))
		}
	case pushed:
		ttl = defaultPushedTTL
	default:
		ttl = defaultPolledTTL
	}
	// Handlers share a cache only when they read the same tokens the same
	// way: its values are what their loaders made.
	h.cacheKey = fmt.Sprintf("%s\x00%d\x00%d\x00%d\x00%s", storeKey, ttl, negTTL, size, h.tokensKey())
	v, _, err := caches.LoadOrNew(h.cacheKey, func() (caddy.Destructor, error) {
		c := cache.New[cachedIdentity](ttl, negTTL, size, store.ErrNotFound)
		c.SetBound(bound)
		pc := pooledCache{identityCache: c}
		if h.knox != nil {
			pc.users = newUsersCache(ttl, size)
		}
		return pc, nil
	})
	if err != nil {
		return err
	}
	h.cache = v.(pooledCache).identityCache
	h.shareUsers(v.(pooledCache).users)
	target.Store(h.cache)
	// Changes made before the subscription could have been missed.
	h.cache.Flush()
	cacheFlushesProvision.Inc()
	return nil
}

// load looks key up in the handler's store, for the cache (a miss of a
// shared cache asks the store of the handler that had it) or, with the
// cache off, for every request. A DRF token older than max_age is not
// found.
func (h *TokenAuth) load(ctx context.Context, key string) (cachedIdentity, error) {
	if h.knox != nil {
		return h.loadKnox(ctx, key)
	}
	id, err := h.store.Lookup(ctx, key)
	if err != nil {
		return cachedIdentity{}, err
	}
	var tok *tokenState
	if h.maxAge > 0 {
		until := id.Created.Add(h.maxAge)
		if !time.Now().Before(until) {
			return cachedIdentity{}, fmt.Errorf("%w: older than max_age", store.ErrNotFound)
		}
		tok = &tokenState{until: until.UnixNano()}
	}
	return h.identity(ctx, id, tok)
}

// tokensKey names the handler's token rules, for the cache's pool key.
func (h *TokenAuth) tokensKey() string {
	if h.Tokens == nil {
		return tokensDRF
	}
	t := *h.Tokens
	return fmt.Sprintf("%s %d %d %d %t %t %d %d", cmp.Or(t.Kind, tokensDRF), t.MaxAge, t.TTL, t.MaxTTL,
		t.NeverExpire, t.AutoRefresh, t.MinRefreshInterval, len(t.Prefix))
}

// throttles keeps each budget across config reloads, so that a reload
// does not hand every client a fresh one. A budget is named by what it
// counts and its rate; handlers that name the same budget share it.
var throttles = caddy.NewUsagePool()

// pooledThrottle lets a throttle live in the usage pool: it holds nothing
// to release.
type pooledThrottle struct{ *throttle.Throttle }

func (pooledThrottle) Destruct() error { return nil }

// loadThrottle returns the shared budget name at rate r.
func loadThrottle(name string, r drf.Rate) (*throttle.Throttle, error) {
	v, _, err := throttles.LoadOrNew(name, func() (caddy.Destructor, error) {
		return pooledThrottle{throttle.New(r)}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(pooledThrottle).Throttle, nil
}
