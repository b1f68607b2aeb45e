package drf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Rate is a DRF throttle rate: Num requests per Period.
type Rate struct {
	Num    int
	Period time.Duration
}

// ParseRate reads DRF's rate syntax, "<n>/<period>", where only the
// period's first letter counts (s, m, h, d), as in
// SimpleRateThrottle.parse_rate: "5/min", "100/hour", "10/mystery" (a
// minute). The number must be a positive integer.
func ParseRate(s string) (Rate, error) {
	n, period, ok := strings.Cut(s, "/")
	if !ok || period == "" {
		return Rate{}, fmt.Errorf("rate %q: want <number>/<period>, e.g. 5/min", s)
	}
	num, err := strconv.Atoi(n)
	if err != nil || num <= 0 {
		return Rate{}, fmt.Errorf("rate %q: the number of requests must be a positive integer", s)
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
		return Rate{}, fmt.Errorf("rate %q: the period must start with s, m, h or d", s)
	}
	return Rate{Num: num, Period: d}, nil
}

// Wait is DRF's SimpleRateThrottle.wait for a window that holds n counted
// requests, the oldest at oldest (times in unix nanoseconds, now too): 0
// while the budget has room, else the time until the oldest leaves the
// window, spread over the requests available then (one, here).
func (r Rate) Wait(n int, oldest, now int64) time.Duration {
	if n < r.Num {
		return 0
	}
	remaining := time.Duration(oldest + int64(r.Period) - now)
	available := r.Num - n + 1
	if available <= 0 {
		return r.Period
	}
	return remaining / time.Duration(available)
}

// ThrottledDetail is DRF's Throttled message for a wait, and the
// Retry-After value that goes with it: the wait in whole seconds, rounded
// up as DRF does.
func ThrottledDetail(wait time.Duration) (detail string, retryAfter string) {
	secs := int(math.Ceil(wait.Seconds()))
	unit := "seconds"
	if secs == 1 {
		unit = "second"
	}
	n := strconv.Itoa(secs)
	return "Request was throttled. Expected available in " + n + " " + unit + ".", n
}
