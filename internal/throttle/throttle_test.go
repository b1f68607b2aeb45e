package throttle

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenauth/caddy-tokenauth/internal/drf"
)

// fakeClock steps time by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestThrottleSlidingWindowAndWait(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	th := New(drf.Rate{Num: 3, Period: time.Minute})
	th.now = clock.now
	for i := 0; i < 3; i++ {
		if w := th.Allow("10.0.0.1"); w != 0 {
			t.Fatalf("request %d throttled (%v)", i+1, w)
		}
		clock.advance(10 * time.Second)
	}
	// 30 s after the first request: it leaves the window in 30 s.
	if w := th.Allow("10.0.0.1"); w != 30*time.Second {
		t.Fatalf("4th request: wait %v, want 30s", w)
	}
	if w := th.Allow("10.0.0.2"); w != 0 {
		t.Fatal("another client shares the budget")
	}
	clock.advance(30 * time.Second)
	if w := th.Allow("10.0.0.1"); w != 0 {
		t.Fatalf("after the window: wait %v", w)
	}
	// Throttled requests are not counted (DRF records only allowed ones).
	if w := th.Allow("10.0.0.1"); w != 10*time.Second {
		t.Fatalf("wait %v, want 10s", w)
	}
}

func TestThrottleMemoryStaysBoundedUnderManyClients(t *testing.T) {
	th := New(drf.Rate{Num: 5, Period: time.Hour})
	th.maxEntries = 10_000
	for i := 0; i < 200_000; i++ {
		th.Allow(fmt.Sprintf("203.0.%d.%d", i/256, i%256))
		if i%1000 == 0 {
			if entries, _ := throttleSize(th); entries > 10_000 {
				t.Fatalf("after %d clients: %d entries, bound 10000", i+1, entries)
			}
		}
	}
	if entries, clients := throttleSize(th); entries > 10_000 || clients > 10_000 {
		t.Fatalf("%d entries, %d clients kept", entries, clients)
	}
	// The client being counted is never the one evicted.
	th.Allow("198.51.100.7")
	if th.Wait("198.51.100.8") != 0 || throttleHolds(th, "198.51.100.7") != 1 {
		t.Fatal("the current client was evicted")
	}
}

func TestThrottleFailureBudgetRecordsEveryFailure(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	th := New(drf.Rate{Num: 2, Period: time.Minute})
	th.now = clock.now
	th.Record("a")
	if th.Wait("a") != 0 {
		t.Fatal("throttled after one failure")
	}
	th.Record("a")
	th.Record("a") // keeps the newest two
	clock.advance(time.Second)
	if w := th.Wait("a"); w != 59*time.Second {
		t.Fatalf("wait %v, want 59s", w)
	}
}

// throttleSize counts the times th holds and the clients they belong to.
func throttleSize(th *Throttle) (entries, clients int) {
	th.once.Do(th.setup)
	for i := range th.shards {
		s := &th.shards[i]
		s.mu.Lock()
		entries += s.entries
		clients += s.ips.used + len(s.names)
		s.mu.Unlock()
	}
	return entries, clients
}

// throttleHolds counts the times th holds for key, expired ones included.
func throttleHolds(th *Throttle, key string) int {
	s, k := th.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.load(&k)
	if !ok {
		return 0
	}
	return s.length(v)
}

// throttleShardEntries counts the times held by the shard of key.
func throttleShardEntries(th *Throttle, key string) int {
	s, _ := th.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries
}

// throttleWorstScan is the most clients one eviction of th visited.
func throttleWorstScan(th *Throttle) int {
	worst := 0
	for i := range th.shards {
		s := &th.shards[i]
		s.mu.Lock()
		worst = max(worst, s.worstScan)
		s.mu.Unlock()
	}
	return worst
}

// ipv6Client and ipv4Client name the i-th of many distinct clients.
func ipv6Client(i int) string {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 8: byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 15: 1}).String()
}

func ipv4Client(i int) string {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()
}

// A full window keeps the newest num times: the oldest one leaves.
func TestThrottleFullWindowDropsTheOldest(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	for _, key := range []string{"203.0.113.9", "2001:db8::9", "fe80::9%eth0", "203.0.113.9:4431"} {
		for _, num := range []int{1, 2, 3, 5} {
			clock := &fakeClock{t: start}
			th := New(drf.Rate{Num: num, Period: time.Minute})
			th.now = clock.now
			// num+1 failures, 10 s apart: the first one must go.
			for i := 0; i <= num; i++ {
				th.Record(key)
				clock.advance(10 * time.Second)
			}
			// The oldest kept is at 10 s; it leaves the window at 70 s.
			want := 70*time.Second - time.Duration(num+1)*10*time.Second
			if w := th.Wait(key); w != want {
				t.Fatalf("%s %d/min: wait %v after %d failures, want %v", key, num, w, num+1, want)
			}
			// At 70 s it has left, so one more failure fills the window
			// again; its oldest is then the one of 20 s (or this one).
			clock.t = start.Add(70 * time.Second)
			th.Record(key)
			want = 10 * time.Second
			if num == 1 {
				want = time.Minute
			}
			if w := th.Wait(key); w != want {
				t.Fatalf("%s %d/min: wait %v at 70 s, want %v", key, num, w, want)
			}
			if got := throttleHolds(th, key); got != num {
				t.Fatalf("%s %d/min: %d times kept", key, num, got)
			}
		}
	}
}

// Keys share a budget only when they are the same string.
func TestThrottleKeysStayApart(t *testing.T) {
	keys := []string{
		"192.0.2.1", "::ffff:192.0.2.1", "192.0.2.1:443", "192.0.2.10",
		"2001:db8::1", "2001:DB8::1", "2001:db8:0::1", "2001:db8::1:0",
		"fe80::1", "fe80::1%eth0", "fe80::1%eth1", "", "a", "::", "0.0.0.0",
	}
	th := New(drf.Rate{Num: 1, Period: time.Hour})
	for _, k := range keys {
		if w := th.Allow(k); w != 0 {
			t.Fatalf("%q shares a budget with an earlier key", k)
		}
	}
	for _, k := range keys {
		if th.Allow(k) == 0 {
			t.Fatalf("%q was not counted", k)
		}
	}
	if entries, clients := throttleSize(th); entries != len(keys) || clients != len(keys) {
		t.Fatalf("%d entries, %d clients, want %d", entries, clients, len(keys))
	}
}

// Concurrent requests cannot overdraw a budget: check and count are one step.
func TestThrottleConcurrentAllowNeverOverdraws(t *testing.T) {
	th := New(drf.Rate{Num: 50, Period: time.Hour})
	for round := 0; round < 20; round++ {
		key := ipv4Client(round)
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100; i++ {
					if th.Allow(key) == 0 {
						allowed.Add(1)
					}
					runtime.Gosched()
				}
			}()
		}
		wg.Wait()
		if n := allowed.Load(); n != 50 {
			t.Fatalf("%s: %d requests allowed, budget 50", key, n)
		}
	}
}

// When the throttle is full, expired times make room before anyone's live
// budget does.
func TestThrottleEvictsExpiredClientsFirst(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	th := New(drf.Rate{Num: 1, Period: time.Hour})
	th.maxEntries = 4096
	th.now = clock.now
	for i := 0; i < 4095; i++ {
		th.Record(ipv4Client(i))
	}
	clock.advance(59 * time.Minute)
	th.Record("198.51.100.7")
	clock.advance(2 * time.Minute) // the first 4095 have expired
	for i := 0; i < 1000; i++ {
		th.Record(ipv6Client(i))
	}
	for i := 0; i < 1000; i++ {
		if th.Wait(ipv6Client(i)) == 0 {
			t.Fatalf("live client %d was evicted while expired ones remained", i)
		}
	}
	if th.Wait("198.51.100.7") == 0 {
		t.Fatal("a live client was evicted while expired ones remained")
	}
}

// Freeing room is incremental: a call at the cap trims or drops what it
// visits, never more than evictScan clients, so no lock is held for long.
func TestThrottleEvictionIsIncremental(t *testing.T) {
	const num, limit = 3, 1 << 15
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	th := New(drf.Rate{Num: num, Period: time.Hour})
	th.maxEntries = limit
	th.now = clock.now
	worstDrop, full := 0, 0
	for i := 0; i < 120_000; i++ {
		if i%5000 == 0 {
			clock.advance(20 * time.Minute) // a mix of expired and live
			if entries, _ := throttleSize(th); entries > limit {
				t.Fatalf("call %d: %d entries, bound %d", i, entries, limit)
			} else if entries > limit*9/10 {
				full++
			}
		}
		key := ipv6Client(i / (1 + i%num)) // clients of one to three times
		before := throttleShardEntries(th, key)
		th.Record(key)
		worstDrop = max(worstDrop, before+1-throttleShardEntries(th, key))
	}
	if worstDrop > evictScan*num {
		t.Fatalf("one call dropped %d times; bound %d (%d clients of %d)", worstDrop, evictScan*num, evictScan, num)
	}
	if full < 10 {
		t.Fatalf("the throttle was near its bound only %d times", full)
	}
	if w := throttleWorstScan(th); w > evictScan || w == 0 {
		t.Fatalf("one eviction visited %d clients, bound %d", w, evictScan)
	}
}

// The default bound is the README's (a million times, about 32 MB for
// IP clients) and holds however many clients come: filling beyond it
// keeps at most 1<<20 times, in less than 48 MB of heap.
func TestThrottleDefaultCapHoldsTheREADMEFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a million clients")
	}
	const readmeEntries = 1 << 20
	const bound = 48 << 20 // bytes
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	th := New(drf.Rate{Num: 1, Period: time.Hour})
	for i := 0; i < readmeEntries+readmeEntries/8; i++ {
		th.Record(ipv6Client(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	entries, clients := throttleSize(th)
	runtime.KeepAlive(th)
	if entries > readmeEntries || clients > readmeEntries {
		t.Fatalf("%d entries for %d clients, bound %d", entries, clients, readmeEntries)
	}
	if entries < readmeEntries/2 {
		t.Fatalf("only %d entries kept, the bound is %d", entries, readmeEntries)
	}
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d clients: %.1f MB, %.1f B/client", clients, float64(grown)/(1<<20), float64(grown)/float64(clients))
	if grown > bound {
		t.Fatalf("%d clients hold %.1f MB of heap, bound %d MB", clients, float64(grown)/(1<<20), bound>>20)
	}
}

// The IP table agrees with a map through growth and many deletions (each
// of which moves back the clients probed past the hole).
func TestThrottleIPTableMatchesAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seed := maphash.MakeSeed()
	tab := ipTable{seed: seed, limit: 1281}
	want := map[[16]byte]int64{}
	key := func() [16]byte {
		var k [16]byte
		k[0], k[15] = 0x20, byte(rng.IntN(1500)) // few distinct keys: hits and misses
		k[14] = byte(rng.IntN(2))
		return k
	}
	for op := 0; op < 200_000; op++ {
		k := key()
		h := maphash.Bytes(seed, k[:])
		switch {
		case rng.IntN(3) == 0:
			tab.remove(k, h)
			delete(want, k)
		case len(want) < 1024:
			v := int64(rng.Uint64() >> 1)
			tab.set(k, h, v)
			want[k] = v
		}
		if tab.used != len(want) {
			t.Fatalf("op %d: %d used, want %d", op, tab.used, len(want))
		}
		if op%1000 == 0 {
			for k, v := range want {
				if got, ok := tab.get(k, maphash.Bytes(seed, k[:])); !ok || got != v {
					t.Fatalf("op %d: %x: got %d %v, want %d", op, k, got, ok, v)
				}
			}
		}
	}
	if len(tab.slots) > tab.limit {
		t.Fatalf("%d slots, limit %d", len(tab.slots), tab.limit)
	}
}

// modelThrottle is DRF's SimpleRateThrottle as plainly as it can be said.
type modelThrottle struct {
	rate    drf.Rate
	history map[string][]int64
}

func (m *modelThrottle) window(key string, now int64) []int64 {
	h := m.history[key]
	for len(h) > 0 && h[0] <= now-int64(m.rate.Period) {
		h = h[1:]
	}
	m.history[key] = h
	return h
}

func (m *modelThrottle) wait(key string, now int64) time.Duration {
	h := m.window(key, now)
	if len(h) == 0 {
		return 0
	}
	return m.rate.Wait(len(h), h[0], now)
}

func (m *modelThrottle) record(key string, now int64) {
	h := m.window(key, now)
	if len(h) >= m.rate.Num {
		h = h[1:]
	}
	m.history[key] = append(h, now)
}

// Below its bound the throttle answers as DRF would, for any mix of keys.
func TestThrottleMatchesDRFBelowTheBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	for _, num := range []int{1, 2, 7} {
		r := drf.Rate{Num: num, Period: time.Minute}
		th := New(r)
		th.now = clock.now
		model := &modelThrottle{rate: r, history: map[string][]int64{}}
		for op := 0; op < 100_000; op++ {
			var key string
			switch i := rng.IntN(3000); i % 3 {
			case 0:
				key = ipv4Client(i)
			case 1:
				key = ipv6Client(i)
			default:
				key = ipv6Client(i) + "%eth0"
			}
			clock.advance(time.Duration(rng.IntN(int(50 * time.Millisecond))))
			now := clock.t.UnixNano()
			switch rng.IntN(3) {
			case 0:
				th.Record(key)
				model.record(key, now)
			case 1:
				got, want := th.Allow(key), model.wait(key, now)
				if want == 0 {
					model.record(key, now)
				}
				if got != want {
					t.Fatalf("%d/min op %d: allow(%s) = %v, DRF %v", num, op, key, got, want)
				}
			default:
				if got, want := th.Wait(key), model.wait(key, now); got != want {
					t.Fatalf("%d/min op %d: wait(%s) = %v, DRF %v", num, op, key, got, want)
				}
			}
		}
		held := 0
		for k := range model.history { // trims every window on both sides
			th.Wait(k)
			held += len(model.window(k, clock.t.UnixNano()))
		}
		if entries, _ := throttleSize(th); entries != held {
			t.Fatalf("%d/min: %d entries, DRF holds %d", num, entries, held)
		}
	}
}
