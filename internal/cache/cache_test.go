package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// testValue is what the handler caches, in the same shape: a replacer
// provider made once per identity, closing over its values boxed once.
type testValue struct {
	vars func(key string) (any, bool)
}

func identity(userID, username string) testValue {
	idAny, nameAny := any(userID), any(username)
	return testValue{vars: func(key string) (any, bool) {
		switch key {
		case "http.auth.user.id":
			return idAny, true
		case "http.auth.user.username":
			return nameAny, true
		}
		return nil, false
	}}
}

var errNotFound = errors.New("not found")

func randomKey(i int) string { return fmt.Sprintf("%040x", i+1) }

// The coarse clock stops when nobody reads it and starts again on a read,
// with the current time.
func TestCoarseClockStopsWhenIdle(t *testing.T) {
	// It lags by up to a tick, more while the machine is busy.
	if d := time.Duration(coarseNow() - time.Now().UnixNano()).Abs(); d > 250*time.Millisecond {
		t.Fatalf("clock off by %v", d)
	}
	deadline := time.Now().Add(clockIdle + time.Second)
	for clock.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the clock still ticks %v after its last read", clockIdle+time.Second)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Duration(coarseNow() - time.Now().UnixNano()).Abs(); d > 250*time.Millisecond {
		t.Fatalf("restarted clock off by %v", d)
	}
	time.Sleep(3 * clockTick)
	if clock.Load() == 0 {
		t.Fatal("the clock stopped right after a read")
	}
	// A loaded machine may hold the ticker back for a while; it must
	// still advance.
	t1 := coarseNow()
	for deadline := time.Now().Add(clockIdle / 2); coarseNow() <= t1; time.Sleep(clockTick) {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted clock does not advance in %v", clockIdle/2)
		}
	}
}

// Expired entries are dropped by the sweep, found and unknown alike, and
// live ones are kept.
func TestCacheSweepDropsExpiredEntries(t *testing.T) {
	c := New[testValue](time.Minute, time.Second, 1000, errNotFound)
	defer c.Close()
	now := time.Now().UnixNano()
	c.now = func() int64 { return now }
	for i := range 100 {
		v := identity(fmt.Sprint(i), "u")
		c.put(randomKey(i), 0, &v)
		c.put(randomKey(1000+i), 0, nil)
	}
	if left := c.sweep(); left != 200 {
		t.Fatalf("sweep of fresh entries left %d, want 200", left)
	}
	now += int64(2 * time.Second) // unknown keys expired, identities not
	if left := c.sweep(); left != 100 {
		t.Fatalf("sweep after negative_ttl left %d, want the 100 identities", left)
	}
	if pos, neg := c.Len(); pos != 100 || neg != 0 {
		t.Fatalf("after negative_ttl: %d found, %d unknown", pos, neg)
	}
	now += int64(time.Minute)
	if left := c.sweep(); left != 0 {
		t.Fatalf("sweep after ttl left %d", left)
	}
}

// The sweeper runs while the cache holds entries and stops once they are
// gone, so an idle cache wakes nobody.
func TestCacheSweeperStopsWhenEmpty(t *testing.T) {
	c := New[testValue](time.Minute, time.Minute, 1000, errNotFound)
	defer c.Close()
	c.sweepEvery = time.Millisecond
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	c.now = now.Load
	c.put(randomKey(1), 0, nil)
	if !c.sweeping.Load() {
		t.Fatal("no sweeper after a put")
	}
	now.Add(int64(2 * time.Minute))
	deadline := time.Now().Add(10 * time.Second)
	for c.sweeping.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the sweeper still runs 10 s after every entry expired")
		}
		time.Sleep(time.Millisecond)
	}
	if _, neg := c.Len(); neg != 0 {
		t.Fatalf("%d expired entries left when the sweeper stopped", neg)
	}
}

// The found identities are bounded by size, like the unknown keys.
func TestCacheBoundsFoundIdentities(t *testing.T) {
	const size = 2 * numShards
	c := New[testValue](time.Minute, time.Minute, size, errNotFound)
	defer c.Close()
	for i := range 50 * size {
		v := identity(fmt.Sprint(i), "u")
		c.put(randomKey(i), 0, &v)
		c.put(randomKey(1_000_000+i), 0, nil)
	}
	if pos, neg := c.Len(); pos > size || neg > size || pos == 0 || neg == 0 {
		t.Fatalf("%d found and %d unknown entries kept with size %d", pos, neg, size)
	}
}

// countingLoader answers every key but "unknown" and "broken", counting its
// calls; it can hold them until the test lets them go.
type countingLoader struct {
	loads   atomic.Int64
	started chan struct{} // if set, told when the first load begins
	release chan struct{} // if set, a load waits for it
}

var errBroken = errors.New("store down")

func (l *countingLoader) load(_ context.Context, key string) (testValue, error) {
	l.loads.Add(1)
	if l.started != nil {
		select {
		case l.started <- struct{}{}:
		default: // told once is enough
		}
	}
	if l.release != nil {
		<-l.release
	}
	switch key {
	case "unknown":
		return testValue{}, fmt.Errorf("lookup: %w", errNotFound)
	case "broken":
		return testValue{}, errBroken
	}
	return identity(key, "u"), nil
}

// A found value and an unknown key are loaded once and then answered from
// the cache (the unknown one with the cache's not-found error); any other
// error is returned and not remembered.
func TestLookupRemembersFoundAndUnknownKeysNotErrors(t *testing.T) {
	c := New[testValue](time.Minute, time.Minute, 1000, errNotFound)
	defer c.Close()
	l := new(countingLoader)
	ctx := context.Background()
	for range 3 {
		v, err := c.Lookup(ctx, randomKey(1), l.load)
		if err != nil || v.vars == nil {
			t.Fatalf("found key: %v %v", v, err)
		}
		if id, _ := v.vars("http.auth.user.id"); id != randomKey(1) {
			t.Fatalf("found key: id %v", id)
		}
		if _, err := c.Lookup(ctx, "unknown", l.load); !errors.Is(err, errNotFound) {
			t.Fatalf("unknown key: %v", err)
		}
	}
	if n := l.loads.Load(); n != 2 {
		t.Fatalf("%d loads for a found and an unknown key asked 3 times, want 2", n)
	}
	for range 2 {
		if _, err := c.Lookup(ctx, "broken", l.load); !errors.Is(err, errBroken) {
			t.Fatalf("broken: %v", err)
		}
	}
	if n := l.loads.Load(); n != 4 {
		t.Fatalf("%d loads, want 4: an error is not remembered", n)
	}
	if _, known, _ := c.Get("broken"); known {
		t.Fatal("an error was cached")
	}
}

// Concurrent misses of a key make one load.
func TestLookupLoadsOnceForConcurrentMisses(t *testing.T) {
	c := New[testValue](time.Minute, time.Minute, 1000, errNotFound)
	defer c.Close()
	l := &countingLoader{started: make(chan struct{}, 1), release: make(chan struct{})}
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Lookup(context.Background(), randomKey(1), l.load)
		}()
	}
	<-l.started
	time.Sleep(20 * time.Millisecond) // let the others join the load
	close(l.release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("lookup %d: %v", i, err)
		}
	}
	if n := l.loads.Load(); n != 1 {
		t.Fatalf("%d loads for 50 concurrent misses of one key", n)
	}
}

// An answer loaded before a Flush or a Forget is not cached after it.
func TestLookupDropsAnAnswerThatRacedWithAFlush(t *testing.T) {
	for name, drop := range map[string]func(*Cache[testValue]){
		"flush":  func(c *Cache[testValue]) { c.Flush() },
		"forget": func(c *Cache[testValue]) { c.Forget(randomKey(1)) },
	} {
		c := New[testValue](time.Minute, time.Minute, 1000, errNotFound)
		l := &countingLoader{started: make(chan struct{}, 1), release: make(chan struct{})}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = c.Lookup(context.Background(), randomKey(1), l.load)
		}()
		<-l.started
		drop(c)
		close(l.release)
		<-done
		if _, known, _ := c.Get(randomKey(1)); known {
			t.Fatalf("%s: an answer read before it was cached after it", name)
		}
		c.Close()
	}
}

// A key longer than MaxKey is loaded every time and never kept; the key
// kept is a copy, not the caller's string.
func TestLookupKeepsNoOverlongKeyAndACopyOfTheOthers(t *testing.T) {
	c := New[testValue](time.Minute, time.Minute, 1000, errNotFound)
	defer c.Close()
	l := new(countingLoader)
	long := strings.Repeat("k", MaxKey+1)
	for range 2 {
		if _, err := c.Lookup(context.Background(), long, l.load); err != nil {
			t.Fatal(err)
		}
	}
	if pos, neg := c.Len(); pos+neg != 0 || l.loads.Load() != 2 {
		t.Fatalf("a %d-byte key: %d entries, %d loads", len(long), pos+neg, l.loads.Load())
	}
	header := "Token " + strings.Repeat("k", MaxKey)
	key := header[len("Token "):]
	if _, err := c.Lookup(context.Background(), key, l.load); err != nil {
		t.Fatal(err)
	}
	s := c.shard(key)
	for k := range s.pos {
		if unsafe.StringData(k) == unsafe.StringData(key) {
			t.Fatal("the entry keeps the caller's string, not a copy")
		}
	}
	if pos, _ := c.Len(); pos != 1 {
		t.Fatalf("a key of exactly %d bytes was not cached", MaxKey)
	}
}

// A value with an expiry of its own (a knox token, a DRF token under
// max_age) is served until boundMargin before it, however long the TTL;
// one without keeps the TTL.
func TestBoundExpiresAValueAtItsOwnExpiryLessAMargin(t *testing.T) {
	c := New[testValue](time.Hour, time.Minute, 1000, errNotFound)
	defer c.Close()
	var now atomic.Int64
	now.Store(int64(time.Hour))
	c.SetClock(now.Load)
	expiries := map[string]int64{"soon": int64(time.Hour + 5*time.Second), "never": 0, "late": int64(3 * time.Hour)}
	c.SetBound(func(v *testValue) int64 {
		name, _ := v.vars("http.auth.user.username")
		return expiries[name.(string)]
	})
	load := func(_ context.Context, key string) (testValue, error) { return identity("1", key), nil }
	for name := range expiries {
		if _, err := c.Lookup(context.Background(), name, load); err != nil {
			t.Fatal(err)
		}
	}
	at := func(d time.Duration, name string, want bool) {
		t.Helper()
		now.Store(int64(d))
		if _, _, found := c.Get(name); found != want {
			t.Errorf("at %v: %s served = %v, want %v", d, name, found, want)
		}
	}
	at(time.Hour+5*time.Second-boundMargin-1, "soon", true)
	at(time.Hour+5*time.Second-boundMargin, "soon", false)
	at(2*time.Hour-1, "never", true)
	at(2*time.Hour-1, "late", true)
	at(2*time.Hour, "never", false)
	at(2*time.Hour, "late", false) // the TTL comes first
	if c.Now() != int64(2*time.Hour) {
		t.Errorf("Now() = %d, want the clock's", c.Now())
	}
}
