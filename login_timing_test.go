//go:build linux && !race

// The race detector slows hashing several times and unevenly: this test
// runs in make test's pass without -race.

package tokenauth

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauth/caddy-tokenauth/password"
)

// A login for an unknown username costs what a wrong password for a user
// with a default-cost hash costs, to 2 %: both take one code path, so the
// time an answer takes does not tell which usernames exist. It compares
// the CPU time of the test's thread, where the whole login runs (store
// query, hashing), which other processes on the machine do not disturb.
func TestLoginTimingUnknownUserMatchesWrongPassword(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/login"}, nil)
	encoded, err := password.Make("the right password", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.h.logins.SetPassword(context.Background(), "alice", encoded); err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	login := func(username string) time.Duration {
		start := cpu()
		r := f.send(t, http.MethodPost, "/login", jsonCT, `{"username":"`+username+`","password":"the wrong password"}`)
		took := cpu() - start
		if r.code != 400 || r.body != `{"non_field_errors":["Unable to log in with provided credentials."]}` {
			t.Fatalf("%s: %d %s", username, r.code, r.body)
		}
		return took
	}
	median := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[len(d)/2]
	}
	// Each pair runs back to back, so that a change in the machine's load
	// hits both of its samples: the median of the pairs' ratios is robust
	// where the ratio of two medians is not.
	const n = 21
	login("alice") // warm up
	var ratio float64
	for attempt := 1; attempt <= 3; attempt++ {
		var unknown, wrong []time.Duration
		var ratios []float64
		for i := range n {
			var u, w time.Duration
			if i%2 == 0 { // alternate the order within a pair
				u, w = login(fmt.Sprintf("nobody%d", i)), login("alice")
			} else {
				w, u = login("alice"), login(fmt.Sprintf("nobody%d", i))
			}
			unknown, wrong = append(unknown, u), append(wrong, w)
			ratios = append(ratios, float64(u)/float64(w))
		}
		slices.Sort(ratios)
		ratio = ratios[n/2]
		t.Logf("attempt %d: median CPU unknown user %v, wrong password %v; median ratio of pairs %.4f",
			attempt, median(unknown), median(wrong), ratio)
		if ratio >= 0.98 && ratio <= 1.02 {
			return
		}
	}
	t.Errorf("unknown user and wrong password differ by more than 2%% (median ratio %.4f)", ratio)
}
