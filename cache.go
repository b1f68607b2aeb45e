package tokenauth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

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
	cacheShards        = 64
	// maxCachedKey is the longest key the cache keeps: longer keys are
	// looked up every time, so that a cache's memory is bounded by its
	// size whatever the headers clients send. DRF's keys have 40
	// characters, knox's lookup prefixes 15.
	maxCachedKey = 256
	// sweepEvery is how often expired entries are dropped while the cache
	// holds any.
	sweepEvery = time.Second
)

// cachedIdentity is a found identity. Its placeholders are answered by a
// replacer provider made once per identity, so that a cache hit gives the
// request its identity without allocating: Replacer.Set would allocate the
// request's fresh map of static values, where appending a provider (as
// Caddy's own map handler does) fits the room Caddy's providers leave. A
// value an earlier handler set with Replacer.Set is answered first.
type cachedIdentity struct {
	vars caddy.ReplacerFunc // {http.auth.user.id} and {http.auth.user.username}
	// expiry in unix nanoseconds with its lowest bit replaced by
	// is_active: one word instead of two keeps an entry under 256 bytes.
	expActive int64
}

// Placeholder names of the identity.
const (
	placeholderUserID   = "http.auth.user.id"
	placeholderUsername = "http.auth.user.username"
)

func newCachedIdentity(id store.Identity) cachedIdentity {
	ci := cachedIdentity{vars: identityVars(id.ID, id.Username)}
	if id.Active {
		ci.expActive = 1
	}
	return ci
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
// without credentials: known, and empty.
var anonymousVars = identityVars("", "")

func (ci *cachedIdentity) active() bool   { return ci.expActive&1 == 1 }
func (ci *cachedIdentity) expires() int64 { return ci.expActive &^ 1 }

type cacheShard struct {
	mu  sync.RWMutex
	pos map[string]cachedIdentity
	neg map[string]int64 // key → expiry, unix nanoseconds
	_   [40]byte         // keep shards on separate cache lines
}

// tokenCache is a sharded map of lookups, with separate bounds for found
// and unknown keys, and one store query for concurrent misses of a key.
//
// Chosen by cache_compare_test.go (2 cores, 1,000,000 identities): a hit
// costs 43 ns from every core at once against 24 ns for an LRU behind one
// mutex (golang-lru's design) and 11 ns for sync.Map; an identity costs
// 246 bytes against 280 and 282. sync.Map is faster but over the memory
// budget of 256 bytes and has no bound of its own; the single-mutex LRU
// serialises every core on one lock and writes on every hit. The shards
// read under a read lock, evict at random (map order, which an attacker
// cannot steer), and keep entries as small values in place.
type tokenCache struct {
	shards      [cacheShards]cacheShard
	seed        maphash.Seed
	ttl, negTTL int64
	maxPos      int // per shard
	maxNeg      int // per shard
	gen         atomic.Uint64
	liveUntil   atomic.Int64 // the latest expiry of an entry put, unix ns
	flight      singleflight.Group
	now         func() int64
	sweeping    atomic.Bool   // a sweeper runs
	quit        chan struct{} // closed by Destruct: the sweeper stops
	sweepEvery  time.Duration
}

func newTokenCache(ttl, negTTL time.Duration, size int) *tokenCache {
	perShard := max(size/cacheShards, 1)
	c := &tokenCache{
		seed:       maphash.MakeSeed(),
		ttl:        int64(ttl),
		negTTL:     int64(negTTL),
		maxPos:     perShard,
		maxNeg:     perShard,
		now:        coarseNow,
		quit:       make(chan struct{}),
		sweepEvery: sweepEvery,
	}
	for i := range c.shards {
		c.shards[i].pos = make(map[string]cachedIdentity)
		c.shards[i].neg = make(map[string]int64)
	}
	return c
}

// clock is the time in unix nanoseconds, updated every clockTick while it
// is read: reading it costs an atomic load where time.Now costs half a
// cache hit. Expiry is never early by more than clockTick. After
// clockIdle without a reader the ticker stops, so an idle server does not
// wake 200 times a second; it is 0 then, and the next reader starts it.
var (
	clock     atomic.Int64
	clockRead atomic.Bool // read since the last tick
	clockMu   sync.Mutex  // starting and stopping
)

const (
	clockTick = 5 * time.Millisecond
	clockIdle = time.Second
)

// coarseNow reads the clock, starting it if it is stopped.
func coarseNow() int64 {
	if t := clock.Load(); t != 0 {
		if !clockRead.Load() { // one write per tick, not per read
			clockRead.Store(true)
		}
		return t
	}
	return startClock()
}

func startClock() int64 {
	clockMu.Lock()
	defer clockMu.Unlock()
	clockRead.Store(true)
	if t := clock.Load(); t != 0 {
		return t
	}
	now := time.Now().UnixNano()
	clock.Store(now)
	go runClock()
	return now
}

// runClock updates the clock until it has gone unread for clockIdle.
func runClock() {
	tick := time.NewTicker(clockTick)
	defer tick.Stop()
	unread := 0
	for t := range tick.C {
		if clockRead.Swap(false) {
			unread = 0
		} else if unread++; unread >= int(clockIdle/clockTick) {
			clockMu.Lock()
			if !clockRead.Load() {
				clock.Store(0)
				clockMu.Unlock()
				return
			}
			clockMu.Unlock()
			unread = 0
		}
		clock.Store(t.UnixNano())
	}
}

func (c *tokenCache) shard(key string) *cacheShard {
	return &c.shards[maphash.String(c.seed, key)%cacheShards]
}

// get returns a cached answer for key: an identity (found) or an unknown
// key (found, with ok false for the identity).
func (c *tokenCache) get(key string) (ci cachedIdentity, known, found bool) {
	s := c.shard(key)
	now := c.now()
	s.mu.RLock()
	ci, found = s.pos[key]
	if found && ci.expires() > now {
		s.mu.RUnlock()
		return ci, true, true
	}
	exp, neg := s.neg[key]
	s.mu.RUnlock()
	if neg && exp > now {
		return cachedIdentity{}, true, false
	}
	return cachedIdentity{}, false, false
}

// lookup answers from the cache or asks the store once for all
// concurrent requests for key.
func (c *tokenCache) lookup(ctx context.Context, st store.Store, key string) (cachedIdentity, error) {
	if ci, known, found := c.get(key); known {
		if !found {
			return cachedIdentity{}, store.ErrNotFound
		}
		return ci, nil
	}
	v, err, _ := c.flight.Do(key, func() (any, error) {
		gen := c.gen.Load()
		// The request that leads may go away; the others still wait for
		// the answer, which the store's own timeout bounds.
		id, err := st.Lookup(context.WithoutCancel(ctx), key)
		switch {
		case err == nil:
			ci := newCachedIdentity(id)
			c.put(key, gen, &ci)
			return ci, nil
		case errors.Is(err, store.ErrNotFound):
			c.put(key, gen, nil)
		}
		return cachedIdentity{}, err
	})
	if err != nil {
		return cachedIdentity{}, err
	}
	return v.(cachedIdentity), nil
}

// put stores an answer found when the cache was at generation gen; an
// answer that raced with a flush is dropped. The entry keeps a copy of the
// key: the key a request brings is a part of its header, which may be far
// longer.
func (c *tokenCache) put(key string, gen uint64, ci *cachedIdentity) {
	if len(key) > maxCachedKey {
		return
	}
	key = strings.Clone(key)
	defer c.startSweeper()
	s := c.shard(key)
	now := c.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if ci == nil {
		if _, ok := s.neg[key]; !ok && len(s.neg) >= c.maxNeg {
			evictOne(s.neg)
		}
		s.neg[key] = now + c.negTTL
		c.extendLife(now + c.negTTL)
		return
	}
	if _, ok := s.pos[key]; !ok && len(s.pos) >= c.maxPos {
		evictOne(s.pos)
	}
	c.extendLife(now + c.ttl)
	ci.expActive = (now+c.ttl)&^1 | ci.expActive&1
	s.pos[key] = *ci
	delete(s.neg, key)
}

// extendLife records that an entry lives until exp.
func (c *tokenCache) extendLife(exp int64) {
	for {
		cur := c.liveUntil.Load()
		if exp <= cur || c.liveUntil.CompareAndSwap(cur, exp) {
			return
		}
	}
}

// live reports whether an entry may still be served: while it is not, a
// change in the store cannot make an answer stale, and a store that polls
// for changes may rest. The margin covers the coarse clock's lag and one
// poll.
func (c *tokenCache) live() bool {
	return c.liveUntil.Load()+int64(time.Second) > time.Now().UnixNano()
}

// evictOne deletes one entry; Go's map order makes it a random one.
func evictOne[V any](m map[string]V) {
	for k := range m {
		delete(m, k)
		return
	}
}

// startSweeper starts the sweeper unless it runs.
func (c *tokenCache) startSweeper() {
	if !c.sweeping.Load() && c.sweeping.CompareAndSwap(false, true) {
		go c.sweeper()
	}
}

// sweeper drops expired entries every sweepEvery until the cache is empty
// or destroyed, so that memory held by entries nobody asks for again is
// returned, and an idle cache costs no wake-ups.
func (c *tokenCache) sweeper() {
	tick := time.NewTicker(c.sweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-c.quit:
			c.sweeping.Store(false)
			return
		case <-tick.C:
		}
		if c.sweep() > 0 {
			continue
		}
		c.sweeping.Store(false)
		// A put that came after the sweep saw the flag still set and
		// started nothing: take its entry over.
		if pos, neg := c.len(); pos+neg == 0 || !c.sweeping.CompareAndSwap(false, true) {
			return
		}
	}
}

// sweep drops the expired entries, one shard locked at a time, and
// returns how many are left. A shard left empty gets fresh maps, since a
// Go map never gives back the room it grew to.
func (c *tokenCache) sweep() (left int) {
	now := c.now()
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		hadPos, hadNeg := len(s.pos), len(s.neg)
		for k, ci := range s.pos {
			if ci.expires() <= now {
				delete(s.pos, k)
			}
		}
		for k, exp := range s.neg {
			if exp <= now {
				delete(s.neg, k)
			}
		}
		if hadPos > 0 && len(s.pos) == 0 {
			s.pos = make(map[string]cachedIdentity)
		}
		if hadNeg > 0 && len(s.neg) == 0 {
			s.neg = make(map[string]int64)
		}
		left += len(s.pos) + len(s.neg)
		s.mu.Unlock()
	}
	return left
}

// flush forgets everything, and anything being looked up right now.
func (c *tokenCache) flush() {
	c.gen.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.pos)
		clear(s.neg)
		s.mu.Unlock()
	}
}

// forget drops one key (logout), and any lookup of it in flight.
func (c *tokenCache) forget(key string) {
	c.gen.Add(1)
	s := c.shard(key)
	s.mu.Lock()
	delete(s.pos, key)
	delete(s.neg, key)
	s.mu.Unlock()
}

// len reports the entries kept, found and unknown.
func (c *tokenCache) len() (pos, neg int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		pos += len(s.pos)
		neg += len(s.neg)
		s.mu.RUnlock()
	}
	return pos, neg
}

// caches shares one cache between the handlers of a config, and across
// config reloads, that use the same store with the same cache settings; so
// a logout on one route is forgotten on all of them.
var caches = caddy.NewUsagePool()

// Destruct stops the sweeper when the last handler using the cache is
// gone.
func (c *tokenCache) Destruct() error {
	close(c.quit)
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
	if c.TTL < 0 || c.NegativeTTL < 0 || c.Size < 0 {
		return fmt.Errorf("cache: ttl, negative_ttl and size must not be negative")
	}
	size := cmp.Or(c.Size, defaultCacheSize)
	negTTL := cmp.Or(time.Duration(c.NegativeTTL), defaultNegativeTTL)
	w, watched := h.store.(store.Watcher)
	// Each handler subscribes through its own store module, so the shared
	// cache stays subscribed while any of its users lives.
	pushed := false
	var target atomic.Pointer[tokenCache] // set once the cache exists
	if watched {
		h.stopWatch, pushed = w.Watch(func() {
			if c := target.Load(); c != nil {
				c.flush()
			}
		}, func() bool {
			c := target.Load()
			return c == nil || c.live()
		})
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
	h.cacheKey = fmt.Sprintf("%s\x00%d\x00%d\x00%d", storeKey, ttl, negTTL, size)
	v, _, err := caches.LoadOrNew(h.cacheKey, func() (caddy.Destructor, error) {
		return newTokenCache(ttl, negTTL, size), nil
	})
	if err != nil {
		return err
	}
	h.cache = v.(*tokenCache)
	target.Store(h.cache)
	// Changes made before the subscription could have been missed.
	h.cache.flush()
	return nil
}
