package tokenauth

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokenauth/caddy-tokenauth/internal/cache"
	"github.com/tokenauth/caddy-tokenauth/store"
)

// countingStore counts lookups and can slow them down, or hold them until
// the test lets them go.
type countingStore struct {
	store.Store
	lookups atomic.Int64
	delay   time.Duration
	started chan struct{} // if set, told when a lookup begins
	release chan struct{} // if set, a lookup waits for it
}

func (c *countingStore) Lookup(ctx context.Context, key string) (store.Identity, error) {
	c.lookups.Add(1)
	if c.started != nil {
		c.started <- struct{}{}
	}
	if c.release != nil {
		<-c.release
	}
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	return c.Store.Lookup(ctx, key)
}

func withCounter(f *fixture, delay time.Duration) *countingStore {
	c := &countingStore{Store: f.h.store, delay: delay}
	f.h.store = c
	return c
}

func randomKey(i int) string { return fmt.Sprintf("%040x", i+1) }

func TestMalformedKeysCostNoQuery(t *testing.T) {
	f := newFixture(t, nil, nil)
	c := withCounter(f, 0)
	for _, k := range []string{"abc", "ABCDEF0123456789ABCDEF0123456789ABCDEF01", f.alice + "0", f.alice[:39], "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"} {
		if r := f.do(t, "Token "+k); r.code != 401 || r.body != `{"detail":"Invalid token."}` {
			t.Fatalf("%q: %+v", k, r)
		}
	}
	if n := c.lookups.Load(); n != 0 {
		t.Fatalf("%d store queries for malformed keys", n)
	}
}

func TestKeyFormatAnyLooksUpEveryKey(t *testing.T) {
	f := newFixture(t, func(h *TokenAuth) { h.KeyFormat = "any" }, nil)
	c := withCounter(f, 0)
	if r := f.do(t, "Token abcd1234"); r.code != 401 || r.body != `{"detail":"Invalid token."}` {
		t.Fatalf("%+v", r)
	}
	if c.lookups.Load() != 1 {
		t.Fatalf("%d lookups, want 1", c.lookups.Load())
	}
}

func TestRandomKeysCostOneQueryEachPerNegativeTTL(t *testing.T) {
	f := newFixture(t, nil, nil)
	c := withCounter(f, 0)
	const n = 500
	for round := 0; round < 3; round++ {
		for i := 0; i < n; i++ {
			if r := f.do(t, "Token "+randomKey(i)); r.code != 401 {
				t.Fatalf("%+v", r)
			}
		}
	}
	if got := c.lookups.Load(); got != n {
		t.Fatalf("%d queries for %d random keys sent 3 times, want %d", got, n, n)
	}
}

func TestConcurrentMissesMakeOneQuery(t *testing.T) {
	f := newFixture(t, nil, nil)
	c := withCounter(f, 50*time.Millisecond)
	var wg sync.WaitGroup
	codes := make([]int, 50)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = f.do(t, "Token "+f.alice).code
		}()
	}
	wg.Wait()
	for i, code := range codes {
		if code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if n := c.lookups.Load(); n != 1 {
		t.Fatalf("%d queries for 50 concurrent misses of one key", n)
	}
}

func TestFlushDropsAnAnswerInFlight(t *testing.T) {
	f := newFixture(t, nil, nil)
	c := withCounter(f, 0)
	c.started, c.release = make(chan struct{}, 1), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.do(t, "Token "+f.alice)
	}()
	<-c.started
	f.h.cache.Flush()
	close(c.release)
	<-done
	if _, known, _ := f.h.cache.Get(f.alice); known {
		t.Fatal("an answer read before the flush was cached after it")
	}
	f.do(t, "Token "+f.alice)
	if c.lookups.Load() != 2 {
		t.Fatalf("%d lookups, want 2", c.lookups.Load())
	}
}

func TestRandomKeyFloodDoesNotEvictValidEntries(t *testing.T) {
	f := newFixture(t, func(h *TokenAuth) { h.Cache = &Cache{Size: 6400} }, nil)
	c := withCounter(f, 0)
	f.do(t, "Token "+f.alice)
	for i := 0; i < 20_000; i++ {
		f.do(t, "Token "+randomKey(i))
	}
	pos, neg := f.h.cache.Len()
	if neg > 6400 || pos != 1 {
		t.Fatalf("cache holds %d found and %d unknown keys", pos, neg)
	}
	before := c.lookups.Load()
	if r := f.do(t, "Token "+f.alice); r.code != 200 {
		t.Fatalf("%+v", r)
	}
	if c.lookups.Load() != before {
		t.Fatal("the valid entry was evicted by the flood")
	}
}

func TestCacheEntriesExpire(t *testing.T) {
	f := newFixture(t, func(h *TokenAuth) {
		h.Cache = &Cache{TTL: caddy.Duration(time.Minute), NegativeTTL: caddy.Duration(10 * time.Second)}
	}, nil)
	c := withCounter(f, 0)
	now := time.Now().UnixNano()
	f.h.cache.SetClock(func() int64 { return now })
	f.do(t, "Token "+f.alice)
	f.do(t, "Token "+randomKey(1))
	now += int64(30 * time.Second) // past negative_ttl, within ttl
	f.do(t, "Token "+f.alice)
	f.do(t, "Token "+randomKey(1))
	if c.lookups.Load() != 3 {
		t.Fatalf("%d lookups, want 3", c.lookups.Load())
	}
	now += int64(time.Minute)
	f.do(t, "Token "+f.alice)
	if c.lookups.Load() != 4 {
		t.Fatalf("%d lookups after ttl, want 4", c.lookups.Load())
	}
}

func TestCacheOffQueriesEveryTime(t *testing.T) {
	f := newFixture(t, func(h *TokenAuth) { h.Cache = &Cache{Off: true} }, nil)
	c := withCounter(f, 0)
	for i := 0; i < 3; i++ {
		if r := f.do(t, "Token "+f.alice); r.code != 200 {
			t.Fatalf("%+v", r)
		}
	}
	if c.lookups.Load() != 3 {
		t.Fatalf("%d lookups, want 3", c.lookups.Load())
	}
}

// A token Django deletes, or a user it deactivates, in the same SQLite
// file stops working at once although the cache held it.
func TestChangesByAnotherProcessReachTheCache(t *testing.T) {
	f := newFixture(t, nil, nil)
	if r := f.do(t, "Token "+f.alice); r.code != 200 {
		t.Fatalf("%+v", r)
	}
	db, err := sql.Open("sqlite", f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, change := range []struct {
		sql  string
		want string
	}{
		{`UPDATE auth_user SET is_active = 0 WHERE username = 'alice'`, `{"detail":"User inactive or deleted."}`},
		{`DELETE FROM authtoken_token`, `{"detail":"Invalid token."}`},
	} {
		start := time.Now()
		if _, err := db.Exec(change.sql); err != nil {
			t.Fatal(err)
		}
		for {
			r := f.do(t, "Token "+f.alice)
			if r.body == change.want {
				t.Logf("%s: refused after %v", change.sql, time.Since(start))
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("%s: still %d %s after 1s", change.sql, r.code, r.body)
			}
			time.Sleep(2 * time.Millisecond)
		}
		if el := time.Since(start); el > 100*time.Millisecond {
			t.Errorf("%s took %v, over 100ms", change.sql, el)
		}
	}
}

// TestCacheHitAllocatesNothing measures the handler as Caddy runs it: every
// request comes with a fresh replacer, so an identity set with
// Replacer.Set would allocate the replacer's map on each one.
func TestCacheHitAllocatesNothing(t *testing.T) {
	f := newFixture(t, nil, nil)
	req, rec, next := hitRequest(f)
	if err := f.h.ServeHTTP(rec, prepare(req, rec), next); err != nil {
		t.Fatal(err)
	}
	var r *http.Request
	preparing := testing.AllocsPerRun(500, func() { r = prepare(req, rec) })
	serving := testing.AllocsPerRun(500, func() {
		r = prepare(req, rec)
		if err := f.h.ServeHTTP(rec, r, next); err != nil {
			t.Fatal(err)
		}
	})
	if serving != preparing {
		t.Fatalf("a cache hit allocates %v times", serving-preparing)
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if id, _ := repl.GetString("http.auth.user.id"); id != f.aliceID {
		t.Fatalf("{http.auth.user.id} = %q, want %q", id, f.aliceID)
	}
	got := testing.AllocsPerRun(500, func() {
		if _, ok := repl.Get("http.auth.user.id"); !ok {
			t.Fatal("no user id")
		}
	})
	if got != 0 {
		t.Fatalf("reading {http.auth.user.id} allocates %v times", got)
	}
}

// hitRequest is a request for alice's token, not yet prepared as Caddy's
// server prepares each request.
func hitRequest(f *fixture) (*http.Request, *httptest.ResponseRecorder, caddyhttp.Handler) {
	req := httptest.NewRequest(http.MethodGet, "/api/", nil)
	req.Header.Set("Authorization", "Token "+f.alice)
	rec := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	return req, rec, next
}

// prepare gives req what Caddy's server gives each request: a fresh
// replacer with Caddy's providers, and the request's context values.
func prepare(req *http.Request, w http.ResponseWriter) *http.Request {
	return caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, nil)
}

// BenchmarkServeHTTPCacheHit is the whole auth step for a known token,
// timed alone on requests prepared outside the timer in batches, each with
// its own fresh replacer as in Caddy.
func BenchmarkServeHTTPCacheHit(b *testing.B) {
	f := newFixture(b, nil, nil)
	req, rec, next := hitRequest(f)
	benchHits(b, f.h, req, rec, next)
}

// BenchmarkServeHTTPKnoxCacheHit is the same for a knox token, without
// and with auto-refresh (a token whose expiry needs no write).
func BenchmarkServeHTTPKnoxCacheHit(b *testing.B) {
	for _, refresh := range []bool{false, true} {
		name := "plain"
		if refresh {
			name = "auto_refresh"
		}
		b.Run(name, func(b *testing.B) {
			kf := newKnoxFixture(b, func(h *TokenAuth) { h.Tokens.AutoRefresh = refresh })
			req, rec, next := hitRequest(kf.fixture)
			req.Header.Set("Authorization", "Token "+kf.tokens["uma live"].Token)
			benchHits(b, kf.h, req, rec, next)
		})
	}
}

func benchHits(b *testing.B, h *TokenAuth, req *http.Request, rec *httptest.ResponseRecorder, next caddyhttp.Handler) {
	if err := h.ServeHTTP(rec, prepare(req, rec), next); err != nil || rec.Code != http.StatusOK {
		b.Fatalf("the first request: %v %d %s", err, rec.Code, rec.Body)
	}
	batch := make([]*http.Request, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		b.StopTimer()
		n := min(len(batch), b.N-i)
		for j := range n {
			batch[j] = prepare(req, rec)
		}
		b.StartTimer()
		for _, r := range batch[:n] {
			if err := h.ServeHTTP(rec, r, next); err != nil {
				b.Fatal(err)
			}
		}
		i += n
	}
}

// BenchmarkCacheMemoryPerEntry fills a cache with 1,000,000 identities, or
// 1,000,000 unknown keys, and reports the heap bytes each one costs.
func BenchmarkCacheMemoryPerEntry(b *testing.B) {
	const n = 1_000_000
	ctx := context.Background()
	for _, kind := range []string{"identity", "unknown key"} {
		b.Run(kind, func(b *testing.B) {
			i := 0
			load := func(context.Context, string) (cachedIdentity, error) {
				if kind == "unknown key" {
					return cachedIdentity{}, store.ErrNotFound
				}
				return newCachedIdentity(store.Identity{ID: fmt.Sprint(i + 1), Username: fmt.Sprintf("user%07d", i), Active: true}, nil), nil
			}
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				c := cache.New[cachedIdentity](time.Minute, time.Minute, n, store.ErrNotFound)
				for i = 0; i < n; i++ {
					_, _ = c.Lookup(ctx, randomKey(i), load)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				pos, neg := c.Len()
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(pos+neg), "bytes/entry")
				runtime.KeepAlive(c)
				c.Close()
			}
		})
	}
}

// watchingStore records the subscription the cache makes.
type watchingStore struct {
	store.Store
	flush func()
	live  func() bool
}

func (w *watchingStore) Watch(flush func(), live func() bool) (func(), bool) {
	w.flush, w.live = flush, live
	return func() {}, true
}

// The cache tells the store when it holds nothing a change could make
// stale, so that a polling store can rest on an idle server.
func TestCacheTellsTheStoreWhenItIsLive(t *testing.T) {
	f := newFixture(t, nil, nil)
	ws := &watchingStore{Store: f.h.store}
	f.h.store = ws
	f.h.Cache = &Cache{TTL: caddy.Duration(time.Minute), NegativeTTL: caddy.Duration(time.Minute)}
	if err := f.h.provisionCache("live-test"); err != nil {
		t.Fatal(err)
	}
	if ws.live == nil {
		t.Fatal("no live func given to the store")
	}
	if ws.live() {
		t.Fatal("an empty cache is live")
	}
	past := time.Now().Add(-10 * time.Minute).UnixNano()
	f.h.cache.SetClock(func() int64 { return past })
	if r := f.do(t, "Token "+f.alice); r.code != http.StatusOK {
		t.Fatalf("%+v", r)
	}
	if ws.live() {
		t.Fatal("live with every entry expired (put 10 minutes ago with a 1 minute ttl)")
	}
	f.h.cache.SetClock(nil) // the coarse clock
	if r := f.do(t, "Token "+randomKey(7)); r.code != http.StatusUnauthorized {
		t.Fatalf("%+v", r)
	}
	if !ws.live() {
		t.Fatal("not live with an unknown key remembered for a minute")
	}
	f.h.cache.Flush()
	if !ws.live() {
		t.Fatal("a flush must not end liveness early: an answer may be in flight")
	}
}

// An unknown key is remembered at the cost of its own bytes: the entry
// keeps a copy of the key, not the header it was cut from, however long
// that header is (finding: 20,000 spaces before each random key pinned
// 20 KB per unknown key).
func TestCacheKeepsACopyOfTheKeyNotTheHeader(t *testing.T) {
	f := newFixture(t, nil, nil)
	const n = 2000
	padding := strings.Repeat(" ", 20_000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		if r := f.do(t, "Token"+padding+randomKey(1_000_000+i)); r.code != http.StatusUnauthorized {
			t.Fatalf("request %d: %+v", i, r)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if _, neg := f.h.cache.Len(); neg != n {
		t.Fatalf("%d unknown keys cached, want %d", neg, n)
	}
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d unknown keys behind 20 KB headers: heap grew %d bytes (%d per key)", n, grown, grown/n)
	if grown > 1000*n {
		t.Fatalf("heap grew %d bytes for %d unknown keys: over 1,000 bytes a key", grown, n)
	}
}

// A key longer than cache.MaxKey (possible with key_format any) is looked
// up every time and never kept: the cache's memory is bounded by its size
// whatever the header size.
func TestCacheNeverKeepsAnOverlongKey(t *testing.T) {
	f := newFixture(t, func(h *TokenAuth) { h.KeyFormat = "any" }, nil)
	long := strings.Repeat("k", cache.MaxKey+1)
	for range 2 {
		if r := f.do(t, "Token "+long); r.code != http.StatusUnauthorized || r.body != `{"detail":"Invalid token."}` {
			t.Fatalf("%+v", r)
		}
	}
	if pos, neg := f.h.cache.Len(); pos+neg != 0 {
		t.Fatalf("cached %d found and %d unknown entries for a %d-byte key", pos, neg, len(long))
	}
	if r := f.do(t, "Token "+strings.Repeat("k", cache.MaxKey)); r.code != http.StatusUnauthorized {
		t.Fatalf("%+v", r)
	}
	if _, neg := f.h.cache.Len(); neg != 1 {
		t.Fatalf("a key of exactly %d bytes was not cached (%d unknown entries)", cache.MaxKey, neg)
	}
}

// Without a ttl, an identity is trusted 30 s where the store pushes its
// changes (SQLite watches its file) and 5 s where it does not; unknown keys
// 5 s either way.
func TestCacheDefaultTTLs(t *testing.T) {
	f := newFixture(t, nil, nil)
	if got := f.h.cache.TTL(); got != 30*time.Second {
		t.Errorf("pushed store: ttl %v, want 30s", got)
	}
	if got := f.h.cache.NegativeTTL(); got != 5*time.Second {
		t.Errorf("pushed store: negative_ttl %v, want 5s", got)
	}
	unpushed := &TokenAuth{store: &countingStore{Store: f.h.store}, logger: f.h.logger}
	if err := unpushed.provisionCache("default-ttl-test"); err != nil {
		t.Fatal(err)
	}
	defer unpushed.Cleanup()
	if got := unpushed.cache.TTL(); got != 5*time.Second {
		t.Errorf("store without pushed changes: ttl %v, want 5s", got)
	}
	if got := unpushed.cache.NegativeTTL(); got != 5*time.Second {
		t.Errorf("store without pushed changes: negative_ttl %v, want 5s", got)
	}
}

// Handlers that use the same store with the same cache settings share one
// cache, also across a reload (the new handler starts before the old one
// is cleaned up), so a logout on one route is forgotten on all; other
// settings get a cache of their own.
func TestHandlersOfOneStoreShareACache(t *testing.T) {
	f := newFixture(t, nil, nil)
	provision := func(c *Cache) *TokenAuth {
		h := &TokenAuth{StoreRaw: json.RawMessage(`{"kind":"sqlite","path":"` + f.path + `"}`), Cache: c}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Cleanup() })
		return h
	}
	same := provision(nil)
	if same.cache != f.h.cache {
		t.Fatal("two handlers of one store and the same settings have two caches")
	}
	if r := f.do(t, "Token "+f.alice); r.code != 200 {
		t.Fatalf("%+v", r)
	}
	if pos, _ := same.cache.Len(); pos != 1 {
		t.Fatalf("the other handler's cache holds %d identities, want the one just looked up", pos)
	}
	if other := provision(&Cache{TTL: caddy.Duration(time.Minute)}); other.cache == f.h.cache {
		t.Fatal("a handler with another ttl shares the cache")
	}
	if err := f.h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if reloaded := provision(nil); reloaded.cache != same.cache {
		t.Fatal("a reloaded handler got a new cache while another user of it lives")
	}
}
