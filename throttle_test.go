package tokenauth

import (
	"fmt"
	"testing"
	"time"
)

func TestParseRateFollowsDRF(t *testing.T) {
	tests := []struct {
		in   string
		num  int
		per  time.Duration
		fail bool
	}{
		{"5/min", 5, time.Minute, false},
		{"5/m", 5, time.Minute, false},
		{"100/hour", 100, time.Hour, false},
		{"1000/day", 1000, 24 * time.Hour, false},
		{"3/second", 3, time.Second, false},
		{"10/mystery", 10, time.Minute, false}, // DRF reads only the first letter
		{"0/min", 0, 0, true},
		{"-1/min", 0, 0, true},
		{"five/min", 0, 0, true},
		{"5", 0, 0, true},
		{"5/", 0, 0, true},
		{"5/week", 0, 0, true},
	}
	for _, tt := range tests {
		r, err := parseRate(tt.in)
		if (err != nil) != tt.fail {
			t.Errorf("%q: error %v", tt.in, err)
			continue
		}
		if !tt.fail && (r.num != tt.num || r.period != tt.per) {
			t.Errorf("%q: got %d/%v", tt.in, r.num, r.period)
		}
	}
}

// fakeClock steps time by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestThrottleSlidingWindowAndWait(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	th := newThrottle(rate{num: 3, period: time.Minute})
	th.now = clock.now
	for i := 0; i < 3; i++ {
		if w := th.allow("10.0.0.1"); w != 0 {
			t.Fatalf("request %d throttled (%v)", i+1, w)
		}
		clock.advance(10 * time.Second)
	}
	// 30 s after the first request: it leaves the window in 30 s.
	if w := th.allow("10.0.0.1"); w != 30*time.Second {
		t.Fatalf("4th request: wait %v, want 30s", w)
	}
	if w := th.allow("10.0.0.2"); w != 0 {
		t.Fatal("another client shares the budget")
	}
	clock.advance(30 * time.Second)
	if w := th.allow("10.0.0.1"); w != 0 {
		t.Fatalf("after the window: wait %v", w)
	}
	// Throttled requests are not counted (DRF records only allowed ones).
	if w := th.allow("10.0.0.1"); w != 10*time.Second {
		t.Fatalf("wait %v, want 10s", w)
	}
}

func TestThrottledDetail(t *testing.T) {
	tests := []struct {
		wait   time.Duration
		detail string
		retry  string
	}{
		{60 * time.Second, "Request was throttled. Expected available in 60 seconds.", "60"},
		{time.Second, "Request was throttled. Expected available in 1 second.", "1"},
		{300 * time.Millisecond, "Request was throttled. Expected available in 1 second.", "1"},
		{1500 * time.Millisecond, "Request was throttled. Expected available in 2 seconds.", "2"},
	}
	for _, tt := range tests {
		d, r := throttledDetail(tt.wait)
		if d != tt.detail || r != tt.retry {
			t.Errorf("%v: got %q %q", tt.wait, d, r)
		}
	}
}

func TestThrottleMemoryStaysBoundedUnderManyClients(t *testing.T) {
	th := newThrottle(rate{num: 5, period: time.Hour})
	th.maxEntries = 10_000
	for i := 0; i < 200_000; i++ {
		th.allow(fmt.Sprintf("203.0.%d.%d", i/256, i%256))
		if th.entries > th.maxEntries {
			t.Fatalf("after %d clients: %d entries, bound %d", i+1, th.entries, th.maxEntries)
		}
	}
	if len(th.history) > th.maxEntries {
		t.Fatalf("%d keys kept", len(th.history))
	}
	// The client being counted is never the one evicted.
	th.allow("198.51.100.7")
	if _, ok := th.history["198.51.100.7"]; !ok {
		t.Fatal("the current client was evicted")
	}
}

func TestFailureBudgetRecordsEveryFailure(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	th := newThrottle(rate{num: 2, period: time.Minute})
	th.now = clock.now
	th.record("a")
	if th.wait("a") != 0 {
		t.Fatal("throttled after one failure")
	}
	th.record("a")
	th.record("a") // keeps the newest two
	clock.advance(time.Second)
	if w := th.wait("a"); w != 59*time.Second {
		t.Fatalf("wait %v, want 59s", w)
	}
}
