// Package throttle holds DRF's sliding-window throttles, keyed by client
// IP, with memory bounded whatever the number of clients.
package throttle

import (
	"hash/maphash"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/tokenauth/caddy-tokenauth/internal/drf"
)

// defaultMaxEntries bounds the memory of one throttle: the request times it
// keeps for all clients together. A client costs its times (8 bytes each)
// and a slot for its address, so the worst case is a million clients with
// one request each: about 32 MB of heap when the clients are IP addresses
// (BenchmarkThrottleMemory), whatever their churn.
// TestThrottleDefaultCapHoldsTheREADMEFigure holds it under 48 MB.
const defaultMaxEntries = 1 << 20

const (
	// numShards is how many locks a throttle spreads its clients over.
	numShards = 256
	// evictScan is the most clients one call visits to free room when its
	// shard is full: the work under a lock is bounded whatever the size.
	evictScan = 16
)

// Throttle is DRF's SimpleRateThrottle keyed by client IP: for each key,
// the times of the counted requests in the last period, oldest first (at
// most the rate's Num of them: a full window needs no more to answer). It
// is safe for concurrent use.
//
// Memory is bounded by 2^20 times whatever the number of clients. The
// clients are spread over shards by a seeded hash of the key, each with its
// own lock and its own share of the bound. A shard that is full frees room
// for the next time incrementally: it looks at no more than evictScan
// clients (from a random point), drops what has expired among them, and
// only if nothing had, drops the whole window of one of them (never the
// client being counted).
type Throttle struct {
	rate       drf.Rate
	maxEntries int // read when the throttle is first used
	now        func() time.Time

	once   sync.Once
	seed   maphash.Seed
	shift  uint    // 64 - log2(len(shards))
	shards []shard // a power of two of them
}

// New returns an empty throttle at rate r.
func New(r drf.Rate) *Throttle {
	return &Throttle{rate: r, maxEntries: defaultMaxEntries, now: time.Now}
}

// SetClock makes the throttle read the time from now instead of
// time.Now. It is for tests, and must be called before the throttle is
// used.
func (t *Throttle) SetClock(now func() time.Time) { t.now = now }

// shard holds the windows of the clients whose key hashes to it.
//
// A window is one int64: a request time (unix nanoseconds, >= 0) when the
// client has one, else ^i for windows[i], its times oldest first. So a
// client with one request costs a slot and no allocation.
type shard struct {
	mu      sync.Mutex
	ips     ipTable          // keys that are an IP in canonical form
	names   map[string]int64 // any other key (a zone, "ip:port", ...)
	windows [][]int64
	free    []int32 // unused indexes of windows
	entries int     // times held
	max     int     // bound on entries, so on clients too

	// worstScan is the most clients one eviction visited.
	worstScan int
	_         [64]byte // keeps neighbouring locks off one cache line
}

// clientKey is a client key as a shard stores it.
type clientKey struct {
	ip   [16]byte
	name string
	hash uint64 // seeded: the top bits pick the shard, the low ones the slot
	isIP bool
}

// keyOf stores an IP written canonically as its 16 bytes. Every other
// string (another spelling of an address included) keeps its own budget
// under the string itself, so two keys share a window only when equal.
func keyOf(s string) clientKey {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" && !a.Is4In6() {
		var buf [64]byte
		if string(a.AppendTo(buf[:0])) == s {
			return clientKey{ip: a.As16(), isIP: true}
		}
	}
	return clientKey{name: s}
}

// setup lays out the shards: as many as allow each a share of maxEntries
// of at least rate.Num, so that a full window never has to evict itself.
func (t *Throttle) setup() {
	limit := max(t.maxEntries, 1)
	n := numShards
	for n > 1 && limit/n < t.rate.Num {
		n /= 2
	}
	t.seed = maphash.MakeSeed()
	t.shift = uint(64 - bits.TrailingZeros(uint(n)))
	t.shards = make([]shard, n)
	for i := range t.shards {
		s := &t.shards[i]
		s.max = limit / n
		if i < limit%n {
			s.max++
		}
		s.max = max(s.max, t.rate.Num) // only when maxEntries < rate.Num
		s.ips = ipTable{seed: t.seed, limit: s.max + s.max/4 + 1}
		s.names = make(map[string]int64)
	}
}

// locate returns key as stored and the shard that holds it.
func (t *Throttle) locate(key string) (*shard, clientKey) {
	t.once.Do(t.setup)
	k := keyOf(key)
	if k.isIP {
		k.hash = maphash.Bytes(t.seed, k.ip[:])
	} else {
		k.hash = maphash.String(t.seed, key)
	}
	return &t.shards[k.hash>>t.shift], k
}

// Wait reports how long key must wait before its next request may be
// counted, or 0 when it may go now. It records nothing.
func (t *Throttle) Wait(key string) time.Duration {
	now := t.now().UnixNano()
	s, k := t.locate(key)
	s.mu.Lock()
	v, n := s.window(&k, now-int64(t.rate.Period))
	oldest := s.oldest(v, n)
	s.mu.Unlock()
	return t.rate.Wait(n, oldest, now)
}

// Allow counts a request for key if the budget allows it (DRF's
// allow_request: only allowed requests are recorded). It returns 0 when
// the request was counted, or how long to wait. The check and the count
// are one step, so concurrent requests cannot overdraw the budget.
func (t *Throttle) Allow(key string) time.Duration {
	now := t.now().UnixNano()
	s, k := t.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	cutoff := now - int64(t.rate.Period)
	v, n := s.window(&k, cutoff)
	if w := t.rate.Wait(n, s.oldest(v, n), now); w > 0 {
		return w
	}
	s.add(&k, v, n, now, cutoff, t.rate.Num)
	return 0
}

// Record counts one event for key whatever the budget says, shifting out
// the oldest time of a full window. No handler calls it today (both of
// token_auth's budgets go through Allow, which counts only what it lets
// through, as DRF does); the tests use it to fill windows.
func (t *Throttle) Record(key string) {
	now := t.now().UnixNano()
	s, k := t.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	cutoff := now - int64(t.rate.Period)
	v, n := s.window(&k, cutoff)
	s.add(&k, v, n, now, cutoff, t.rate.Num)
}

// The methods below run with s.mu held.

func (s *shard) load(k *clientKey) (int64, bool) {
	if k.isIP {
		return s.ips.get(k.ip, k.hash)
	}
	v, ok := s.names[k.name]
	return v, ok
}

func (s *shard) store(k *clientKey, v int64) {
	if k.isIP {
		s.ips.set(k.ip, k.hash, v)
	} else {
		s.names[k.name] = v
	}
}

func (s *shard) remove(k *clientKey) {
	if k.isIP {
		s.ips.remove(k.ip, k.hash)
	} else {
		delete(s.names, k.name)
	}
}

// length returns how many times window v holds.
func (s *shard) length(v int64) int {
	if v >= 0 {
		return 1
	}
	return len(s.windows[^v])
}

// oldest returns the oldest time of a window of n times.
func (s *shard) oldest(v int64, n int) int64 {
	switch {
	case n == 0:
		return 0
	case v >= 0:
		return v
	}
	return s.windows[^v][0]
}

// window drops k's times older than the window (at or before cutoff) and
// returns its window and how many times are left.
func (s *shard) window(k *clientKey, cutoff int64) (int64, int) {
	v, ok := s.load(k)
	if !ok {
		return 0, 0
	}
	nv, n := s.trim(v, cutoff)
	if n == 0 {
		s.remove(k)
	} else if nv != v {
		s.store(k, nv)
	}
	return nv, n
}

// trim drops the times of window v at or before cutoff, oldest first as
// DRF does, and returns the window left and its length (0: nothing left,
// and v is released).
func (s *shard) trim(v, cutoff int64) (int64, int) {
	if v >= 0 {
		if v <= cutoff {
			s.entries--
			return 0, 0
		}
		return v, 1
	}
	h := s.windows[^v]
	i := 0
	for i < len(h) && h[i] <= cutoff {
		i++
	}
	if i == 0 {
		return v, len(h)
	}
	s.entries -= i
	switch rest := len(h) - i; {
	case rest == 0:
		s.release(v)
		return 0, 0
	case rest == 1 && h[i] >= 0:
		t := h[i]
		s.release(v)
		return t, 1
	default:
		h = h[:copy(h, h[i:])]
		if cap(h) > 4 && 4*len(h) <= cap(h) {
			h = append(make([]int64, 0, 2*len(h)), h...)
		}
		s.windows[^v] = h
		return v, len(h)
	}
}

// add counts a time for k, whose window v holds n times after trimming. A
// full window drops its oldest time; any other frees room first when the
// shard is full.
func (s *shard) add(k *clientKey, v int64, n int, now, cutoff int64, num int) {
	if n >= num {
		if nv := s.shift(v, now); nv != v {
			s.store(k, nv)
		}
		return
	}
	if s.entries >= s.max {
		s.evict(cutoff, k)
	}
	if n == 0 && !k.isIP {
		k.name = strings.Clone(k.name) // the key may be part of a larger string
	}
	s.store(k, s.push(v, n, now, num))
	s.entries++
}

// shift drops the oldest time of full window v and appends now.
func (s *shard) shift(v, now int64) int64 {
	if v >= 0 && now >= 0 {
		return now // num is 1
	}
	if v >= 0 {
		return s.alloc([]int64{now})
	}
	h := s.windows[^v]
	copy(h, h[1:])
	h[len(h)-1] = now
	return v
}

// push appends now to window v of n < num times.
func (s *shard) push(v int64, n int, now int64, num int) int64 {
	switch {
	case n == 0 && now >= 0:
		return now
	case n == 0:
		return s.alloc([]int64{now}) // a clock before 1970
	case v >= 0:
		return s.alloc(append(make([]int64, 0, 2), v, now))
	}
	h := s.windows[^v]
	if len(h) == cap(h) {
		h = append(make([]int64, 0, min(2*cap(h), num)), h...)
	}
	s.windows[^v] = append(h, now)
	return v
}

func (s *shard) alloc(h []int64) int64 {
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		s.windows[i] = h
		return ^int64(i)
	}
	s.windows = append(s.windows, h)
	return ^int64(len(s.windows) - 1)
}

func (s *shard) release(v int64) {
	if v < 0 {
		s.windows[^v] = nil
		s.free = append(s.free, int32(^v))
	}
}

// evict frees room for one more time, visiting at most evictScan clients
// from a random point of the shard (so an attacker cannot choose which):
// it trims every one of them, and if none had expired times, drops the
// window of the first one. keep, the client being counted, stays.
func (s *shard) evict(cutoff int64, keep *clientKey) {
	before := s.entries
	var ipVictim [16]byte
	var nameVictim string
	var ipFound, nameFound bool
	left := evictScan
	// Each kind of key first in proportion to its number.
	if len(s.names) > 0 && rand.IntN(s.ips.used+len(s.names)) < len(s.names) {
		nameVictim, nameFound, left = s.scanNames(keep, cutoff, left)
		ipVictim, ipFound, left = s.scanIPs(keep, cutoff, left)
		ipFound = ipFound && !nameFound
	} else {
		ipVictim, ipFound, left = s.scanIPs(keep, cutoff, left)
		nameVictim, nameFound, left = s.scanNames(keep, cutoff, left)
		nameFound = nameFound && !ipFound
	}
	s.worstScan = max(s.worstScan, evictScan-left)
	if s.entries < before {
		return
	}
	switch {
	case ipFound:
		h := maphash.Bytes(s.ips.seed, ipVictim[:])
		v, _ := s.ips.get(ipVictim, h)
		s.drop(v)
		s.ips.remove(ipVictim, h)
	case nameFound:
		s.drop(s.names[nameVictim])
		delete(s.names, nameVictim)
	}
}

// scanIPs is evict's visit of the IP keys: at most budget of them, from a
// random slot, trimming each but keep. It returns the first one that had
// nothing to trim and the budget left.
func (s *shard) scanIPs(keep *clientKey, cutoff int64, budget int) (victim [16]byte, found bool, left int) {
	t := &s.ips
	if t.used == 0 {
		return victim, false, budget
	}
	i := rand.IntN(len(t.slots))
	for steps := 0; steps < len(t.slots) && budget > 0; {
		e := &t.slots[i]
		if e.v != emptySlot {
			budget--
			if !keep.isIP || e.key != keep.ip {
				nv, n := s.trim(e.v, cutoff)
				switch {
				case n == 0:
					t.removeAt(i)
					continue // another client may have moved into slot i
				case nv != e.v:
					e.v = nv
				case !found:
					victim, found = e.key, true
				}
			}
		}
		steps++
		if i++; i == len(t.slots) {
			i = 0
		}
	}
	return victim, found, budget
}

// scanNames is scanIPs for the other keys (from a random point of a map).
func (s *shard) scanNames(keep *clientKey, cutoff int64, budget int) (victim string, found bool, left int) {
	for k, v := range s.names {
		if budget == 0 {
			break
		}
		budget--
		if !keep.isIP && k == keep.name {
			continue
		}
		switch nv, n := s.trim(v, cutoff); {
		case n == 0:
			delete(s.names, k)
		case nv != v:
			s.names[k] = nv
		case !found:
			victim, found = k, true
		}
	}
	return victim, found, budget
}

// drop releases window v whole.
func (s *shard) drop(v int64) {
	s.entries -= s.length(v)
	s.release(v)
}

// emptySlot marks a free ipTable slot: no window is ^math.MaxInt64.
const emptySlot = math.MinInt64

// ipTable maps IP addresses to windows: open addressing with linear
// probing and backward-shift deletion, so that churn leaves no tombstones
// and the table never grows past limit slots, which hold the shard's
// bound of clients at a load of 4/5.
type ipTable struct {
	slots []ipSlot
	used  int
	limit int
	seed  maphash.Seed
}

type ipSlot struct {
	key [16]byte
	v   int64
}

// home is the slot a key of hash h probes first.
func (t *ipTable) home(h uint64) int {
	return int(uint64(uint32(h)) * uint64(len(t.slots)) >> 32)
}

// find returns the slot of key, or the free slot where it would go.
func (t *ipTable) find(key [16]byte, h uint64) (int, bool) {
	i := t.home(h)
	for {
		e := &t.slots[i]
		if e.v == emptySlot {
			return i, false
		}
		if e.key == key {
			return i, true
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

func (t *ipTable) get(key [16]byte, h uint64) (int64, bool) {
	if t.used == 0 {
		return 0, false
	}
	i, ok := t.find(key, h)
	return t.slots[i].v, ok
}

func (t *ipTable) set(key [16]byte, h uint64, v int64) {
	if 5*(t.used+1) > 4*len(t.slots) {
		t.grow()
	}
	i, ok := t.find(key, h)
	if !ok {
		t.slots[i].key = key
		t.used++
	}
	t.slots[i].v = v
}

func (t *ipTable) remove(key [16]byte, h uint64) {
	if t.used == 0 {
		return
	}
	if i, ok := t.find(key, h); ok {
		t.removeAt(i)
	}
}

// removeAt empties slot i, moving back the clients probed past it.
func (t *ipTable) removeAt(i int) {
	for j := i; ; {
		if j++; j == len(t.slots) {
			j = 0
		}
		e := &t.slots[j]
		if e.v == emptySlot {
			break
		}
		// e may fill the hole unless its home lies in (i, j], cyclically.
		k := t.home(maphash.Bytes(t.seed, e.key[:]))
		if i <= j && (k <= i || k > j) || i > j && k <= i && k > j {
			t.slots[i] = *e
			i = j
		}
	}
	t.slots[i] = ipSlot{v: emptySlot}
	t.used--
}

// grow doubles the table, up to limit slots.
func (t *ipTable) grow() {
	n := min(max(2*len(t.slots), 8), t.limit)
	if n <= len(t.slots) {
		n = 2 * len(t.slots) // not reached: limit holds the shard's bound
	}
	old := t.slots
	t.slots = make([]ipSlot, n)
	for i := range t.slots {
		t.slots[i].v = emptySlot
	}
	for i := range old {
		if e := &old[i]; e.v != emptySlot {
			j, _ := t.find(e.key, maphash.Bytes(t.seed, e.key[:]))
			t.slots[j] = *e
		}
	}
}
