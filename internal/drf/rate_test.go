package drf

import (
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
		r, err := ParseRate(tt.in)
		if (err != nil) != tt.fail {
			t.Errorf("%q: error %v", tt.in, err)
			continue
		}
		if !tt.fail && (r.Num != tt.num || r.Period != tt.per) {
			t.Errorf("%q: got %d/%v", tt.in, r.Num, r.Period)
		}
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
		d, r := ThrottledDetail(tt.wait)
		if d != tt.detail || r != tt.retry {
			t.Errorf("%v: got %q %q", tt.wait, d, r)
		}
	}
}
