// Package cache is the identity cache of token_auth: a sharded map from
// keys to the values a loader found for them, with separate bounds for
// found and unknown keys, a generation that drops answers which raced
// with a flush, one load for concurrent misses of a key, and hits that
// allocate nothing. It knows a loader function and a value type, not the
// store that answers or what the value holds.
package cache

import (
	"context"
	"errors"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

const (
	numShards = 64
	// MaxKey is the longest key the cache keeps: longer keys are looked
	// up every time, so that a cache's memory is bounded by its size
	// whatever the headers clients send. DRF's keys have 40 characters,
	// knox's lookup prefixes 15.
	MaxKey = 256
	// sweepEvery is how often expired entries are dropped while the cache
	// holds any.
	sweepEvery = time.Second
)

// Loader looks a key up where the answers live. It returns the cache's
// not-found error (see New), possibly wrapped, for an unknown key; any
// other error is returned to the caller and not remembered.
type Loader[V any] func(ctx context.Context, key string) (V, error)

// entry is a found value and its expiry in unix nanoseconds. With a
// pointer-sized value it is two words, which keeps an identity (the map
// slot, its key and what the value points to) under 256 bytes.
type entry[V any] struct {
	val V
	exp int64
}

type shard[V any] struct {
	mu  sync.RWMutex
	pos map[string]entry[V]
	neg map[string]int64 // key → expiry, unix nanoseconds
	_   [40]byte         // keep shards on separate cache lines
}

// Cache is a sharded map of lookups, with separate bounds for found and
// unknown keys, and one load for concurrent misses of a key. It is safe
// for concurrent use.
//
// The structure was chosen by cache_compare_test.go against an LRU behind
// one mutex (golang-lru's design) and sync.Map, on a hit from every core at
// once and in bytes per identity (go test -run '^$' -bench CacheStructure
// -benchmem ./internal/cache). The single-mutex LRU serialises every core
// on one lock and writes on every hit; sync.Map hits faster but costs more
// than the budget of 256 bytes an identity and has no bound of its own.
// The shards read under a read lock, evict at random (map order, which an
// attacker cannot steer), and keep entries as small values in place.
type Cache[V any] struct {
	shards      [numShards]shard[V]
	seed        maphash.Seed
	ttl, negTTL int64
	maxPos      int // per shard
	maxNeg      int // per shard
	notFound    error
	gen         atomic.Uint64
	liveUntil   atomic.Int64 // the latest expiry of an entry put, unix ns
	flight      singleflight.Group
	now         func() int64
	bound       func(*V) int64 // a found value's own expiry, unix ns; 0: none
	sweeping    atomic.Bool    // a sweeper runs
	quit        chan struct{}  // closed by Close: the sweeper stops
	sweepEvery  time.Duration
}

// New returns an empty cache that trusts a found value for ttl and
// remembers an unknown key for negativeTTL, keeping at most size of each
// (at least one per shard). notFound is the error a Loader returns for an
// unknown key, and what Lookup returns for one it remembers.
func New[V any](ttl, negativeTTL time.Duration, size int, notFound error) *Cache[V] {
	perShard := max(size/numShards, 1)
	c := &Cache[V]{
		seed:       maphash.MakeSeed(),
		ttl:        int64(ttl),
		negTTL:     int64(negativeTTL),
		maxPos:     perShard,
		maxNeg:     perShard,
		notFound:   notFound,
		now:        coarseNow,
		quit:       make(chan struct{}),
		sweepEvery: sweepEvery,
	}
	for i := range c.shards {
		c.shards[i].pos = make(map[string]entry[V])
		c.shards[i].neg = make(map[string]int64)
	}
	return c
}

// TTL is how long a found value is trusted.
func (c *Cache[V]) TTL() time.Duration { return time.Duration(c.ttl) }

// NegativeTTL is how long an unknown key is remembered.
func (c *Cache[V]) NegativeTTL() time.Duration { return time.Duration(c.negTTL) }

// SetClock makes the cache read the time, in unix nanoseconds, from now;
// nil restores the coarse clock. It is for tests, and must not be called
// while another goroutine uses the cache.
func (c *Cache[V]) SetClock(now func() int64) {
	if now == nil {
		now = coarseNow
	}
	c.now = now
}

// SetBound makes the cache ask each found value for an expiry of its own,
// in unix nanoseconds (0 for none): the value is served until boundMargin
// before it, whatever the TTL, and then loaded again on every lookup, so
// that the loader (which reads the exact time) decides its last moments.
// It must be called before the cache is used.
func (c *Cache[V]) SetBound(bound func(*V) int64) { c.bound = bound }

// boundMargin is how long before its own expiry a value stops being served:
// far more than the coarse clock's lag, even on a loaded machine.
const boundMargin = time.Second

// Now is the time the cache reads, in unix nanoseconds: the coarse clock
// (late by up to clockTick), or the test's.
func (c *Cache[V]) Now() int64 { return c.now() }

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

func (c *Cache[V]) shard(key string) *shard[V] {
	return &c.shards[maphash.String(c.seed, key)%numShards]
}

// Get returns the cache's answer for key without loading it: known is
// false when the cache has none; otherwise found tells a found value (v)
// from a key remembered as unknown.
func (c *Cache[V]) Get(key string) (v V, known, found bool) {
	s := c.shard(key)
	now := c.now()
	s.mu.RLock()
	e, found := s.pos[key]
	if found && e.exp > now {
		s.mu.RUnlock()
		return e.val, true, true
	}
	exp, neg := s.neg[key]
	s.mu.RUnlock()
	if neg && exp > now {
		return v, true, false
	}
	return v, false, false
}

// Lookup answers from the cache, or calls load once for all concurrent
// lookups of key and remembers its answer: a value, or the not-found
// error, which Lookup returns for an unknown key.
func (c *Cache[V]) Lookup(ctx context.Context, key string, load Loader[V]) (V, error) {
	if v, known, found := c.Get(key); known {
		if !found {
			return v, c.notFound
		}
		return v, nil
	}
	r, err, _ := c.flight.Do(key, func() (any, error) {
		gen := c.gen.Load()
		// The request that leads may go away; the others still wait for
		// the answer, which the loader's own timeout bounds.
		v, err := load(context.WithoutCancel(ctx), key)
		switch {
		case err == nil:
			c.put(key, gen, &v)
		case errors.Is(err, c.notFound):
			c.put(key, gen, nil)
		}
		return v, err
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return r.(V), nil
}

// put stores an answer found when the cache was at generation gen: v, or
// an unknown key when v is nil. An answer that raced with a flush is
// dropped. The entry keeps a copy of the key: the key a request brings is
// a part of its header, which may be far longer.
func (c *Cache[V]) put(key string, gen uint64, v *V) {
	if len(key) > MaxKey {
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
	if v == nil {
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
	exp := now + c.ttl
	if c.bound != nil {
		// The coarse clock lags by clockTick, and by more when the
		// scheduler is slow to run its ticker: the value stops being
		// served boundMargin early, so that its last moments are asked of
		// the loader, which reads the exact time.
		if b := c.bound(v); b != 0 && b-int64(boundMargin) < exp {
			exp = b - int64(boundMargin)
		}
	}
	c.extendLife(exp)
	s.pos[key] = entry[V]{val: *v, exp: exp}
	delete(s.neg, key)
}

// extendLife records that an entry lives until exp.
func (c *Cache[V]) extendLife(exp int64) {
	for {
		cur := c.liveUntil.Load()
		if exp <= cur || c.liveUntil.CompareAndSwap(cur, exp) {
			return
		}
	}
}

// Live reports whether an entry may still be served: while it is not, a
// change where the answers live cannot make one stale, and a store that
// polls for changes may rest. The margin covers the coarse clock's lag and
// one poll.
func (c *Cache[V]) Live() bool {
	return c.liveUntil.Load()+int64(time.Second) > time.Now().UnixNano()
}

// evictOne deletes one entry; Go's map order makes it a random one.
func evictOne[E any](m map[string]E) {
	for k := range m {
		delete(m, k)
		return
	}
}

// startSweeper starts the sweeper unless it runs.
func (c *Cache[V]) startSweeper() {
	if !c.sweeping.Load() && c.sweeping.CompareAndSwap(false, true) {
		go c.sweeper()
	}
}

// sweeper drops expired entries every sweepEvery until the cache is empty
// or closed, so that memory held by entries nobody asks for again is
// returned, and an idle cache costs no wake-ups.
func (c *Cache[V]) sweeper() {
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
		if pos, neg := c.Len(); pos+neg == 0 || !c.sweeping.CompareAndSwap(false, true) {
			return
		}
	}
}

// sweep drops the expired entries, one shard locked at a time, and
// returns how many are left. A shard left empty gets fresh maps, since a
// Go map never gives back the room it grew to.
func (c *Cache[V]) sweep() (left int) {
	now := c.now()
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		hadPos, hadNeg := len(s.pos), len(s.neg)
		for k, e := range s.pos {
			if e.exp <= now {
				delete(s.pos, k)
			}
		}
		for k, exp := range s.neg {
			if exp <= now {
				delete(s.neg, k)
			}
		}
		if hadPos > 0 && len(s.pos) == 0 {
			s.pos = make(map[string]entry[V])
		}
		if hadNeg > 0 && len(s.neg) == 0 {
			s.neg = make(map[string]int64)
		}
		left += len(s.pos) + len(s.neg)
		s.mu.Unlock()
	}
	return left
}

// Flush forgets everything, and anything being loaded right now.
func (c *Cache[V]) Flush() {
	c.gen.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.pos)
		clear(s.neg)
		s.mu.Unlock()
	}
}

// Generation changes with every Flush and Forget: a value made from the
// answers of a load that began at another generation may be stale (what
// Lookup drops); a caller keeping such values beside the cache compares
// it.
func (c *Cache[V]) Generation() uint64 { return c.gen.Load() }

// Forget drops one key (logout), and any load in flight, which may have
// read the key before it was deleted.
func (c *Cache[V]) Forget(key string) {
	c.gen.Add(1)
	s := c.shard(key)
	s.mu.Lock()
	delete(s.pos, key)
	delete(s.neg, key)
	s.mu.Unlock()
}

// Len reports the entries kept, found and unknown, expired ones included
// until they are swept.
func (c *Cache[V]) Len() (found, unknown int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		found += len(s.pos)
		unknown += len(s.neg)
		s.mu.RUnlock()
	}
	return found, unknown
}

// Close stops the sweeper for good: the cache still answers, but no longer
// drops expired entries. It is for a cache nobody uses any more.
func (c *Cache[V]) Close() {
	close(c.quit)
}
