package tokenauth

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rate is a DRF throttle rate: "<n>/<period>", where only the period's
// first letter counts (s, m, h, d), as in SimpleRateThrottle.parse_rate.
type rate struct {
	num    int
	period time.Duration
}

func parseRate(s string) (rate, error) {
	n, period, ok := strings.Cut(s, "/")
	if !ok || period == "" {
		return rate{}, fmt.Errorf("rate %q: want <number>/<period>, e.g. 5/min", s)
	}
	num, err := strconv.Atoi(n)
	if err != nil || num <= 0 {
		return rate{}, fmt.Errorf("rate %q: the number of requests must be a positive integer", s)
	}
	var d time.Duration
	switch period[0] {
	case 's':
		d = time.Second
	case 'm':
		d = time.Minute
	case 'h':
		d = time.Hour
	case 'd':
		d = 24 * time.Hour
	default:
		return rate{}, fmt.Errorf("rate %q: the period must start with s, m, h or d", s)
	}
	return rate{num: num, period: d}, nil
}

// maxThrottleEntries bounds the memory of one throttle: the timestamps it
// keeps for all clients together (8 bytes each, so about 8 MB).
const maxThrottleEntries = 1 << 20

// throttle is DRF's SimpleRateThrottle keyed by client IP: for each key, the
// times of the counted requests in the last period, newest last. Memory is
// bounded by maxEntries timestamps whatever the number of clients: when it
// is full, expired histories go first, then other clients' histories.
type throttle struct {
	rate       rate
	maxEntries int
	now        func() time.Time

	mu      sync.Mutex
	history map[string][]int64 // unix nanoseconds, oldest first
	entries int
}

func newThrottle(r rate) *throttle {
	return &throttle{rate: r, maxEntries: maxThrottleEntries, now: time.Now, history: make(map[string][]int64)}
}

// wait reports how long key must wait before its next request may be
// counted, or 0 when it may go now. It records nothing.
func (t *throttle) wait(key string) time.Duration {
	now := t.now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.trim(key, now)
	if len(h) < t.rate.num {
		return 0
	}
	// DRF's wait(): the time until the oldest counted request leaves the
	// window, spread over the requests available then (one, here).
	remaining := time.Duration(h[0] + int64(t.rate.period) - now)
	available := t.rate.num - len(h) + 1
	if available <= 0 {
		return t.rate.period
	}
	return remaining / time.Duration(available)
}

// allow counts a request for key if the budget allows it (DRF's
// allow_request: only allowed requests are recorded). It returns 0 when
// the request was counted, or how long to wait.
func (t *throttle) allow(key string) time.Duration {
	if w := t.wait(key); w > 0 {
		return w
	}
	t.record(key)
	return 0
}

// record counts one event for key (for failure budgets, where events are
// counted whatever the outcome).
func (t *throttle) record(key string) {
	now := t.now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.trim(key, now)
	if len(h) >= t.rate.num {
		// A full window needs no more than num entries to answer.
		copy(h, h[1:])
		h[len(h)-1] = now
		return
	}
	if t.entries >= t.maxEntries {
		t.evict(now, key)
	}
	t.history[key] = append(h, now)
	t.entries++
}

// trim drops key's entries older than the window and returns what is left.
// Called with t.mu held.
func (t *throttle) trim(key string, now int64) []int64 {
	h, ok := t.history[key]
	if !ok {
		return nil
	}
	cutoff := now - int64(t.rate.period)
	i := 0
	for i < len(h) && h[i] <= cutoff {
		i++
	}
	if i == 0 {
		return h
	}
	t.entries -= i
	if i == len(h) {
		delete(t.history, key)
		return nil
	}
	h = append(h[:0], h[i:]...)
	t.history[key] = h
	return h
}

// evict frees room: first every expired entry, then, if the throttle is
// still over half full, whole histories of other keys (map order, so an
// attacker cannot choose which). Called with t.mu held.
func (t *throttle) evict(now int64, keep string) {
	for k := range t.history {
		t.trim(k, now)
	}
	for k, h := range t.history {
		if t.entries <= t.maxEntries/2 {
			return
		}
		if k == keep {
			continue
		}
		t.entries -= len(h)
		delete(t.history, k)
	}
}

// throttles keeps each budget across config reloads, so that a reload
// does not hand every client a fresh one. A budget is named by what it
// counts and its rate; handlers that name the same budget share it.
var throttles = caddy.NewUsagePool()

// Destruct lets a throttle live in the usage pool.
func (t *throttle) Destruct() error { return nil }

// loadThrottle returns the shared budget name at rate r.
func loadThrottle(name string, r rate) (*throttle, error) {
	v, _, err := throttles.LoadOrNew(name, func() (caddy.Destructor, error) {
		return newThrottle(r), nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*throttle), nil
}

// throttledDetail is DRF's Throttled message for a wait.
func throttledDetail(wait time.Duration) (detail string, retryAfter string) {
	secs := int(math.Ceil(wait.Seconds()))
	unit := "seconds"
	if secs == 1 {
		unit = "second"
	}
	n := strconv.Itoa(secs)
	return "Request was throttled. Expected available in " + n + " " + unit + ".", n
}
