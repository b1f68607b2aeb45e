package tokenauth

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// scrape reads token_auth's series from reg as Caddy's /metrics would:
// "name{label=value}" → value.
func scrape(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "caddy_token_auth_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue()
			if mf.GetType() == dto.MetricType_GAUGE {
				v = m.GetGauge().GetValue()
			}
			got[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return got
}

// counted is what the counters of reg gained since before: the series
// that moved. The counters are the process's, so a test reads what its
// own requests added.
func counted(t testing.TB, reg *prometheus.Registry, before map[string]float64) map[string]float64 {
	t.Helper()
	d := map[string]float64{}
	for k, v := range scrape(t, reg) {
		if strings.HasPrefix(k, "caddy_token_auth_cache_entries{") {
			continue // a gauge: TestCacheEntriesAreCountedAtScrapeTime
		}
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

func diffCounts(got, want map[string]float64) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(maps.Collect(func(yield func(string, float64) bool) {
		for k, v := range got {
			yield(k, v)
		}
		for k, v := range want {
			yield(k, v)
		}
	}))) {
		if got[k] != want[k] {
			fmt.Fprintf(&b, "\n  %s: got %v, want %v", k, got[k], want[k])
		}
	}
	return b.String()
}

// failingStore answers one key as a store outage.
type failingStore struct {
	store.Store
	key string
}

func (s failingStore) Lookup(ctx context.Context, key string) (store.Identity, error) {
	if key == s.key {
		return store.Identity{}, fmt.Errorf("%w: test outage", store.ErrUnavailable)
	}
	return s.Store.Lookup(ctx, key)
}

// failingLogins answers one username as a store outage.
type failingLogins struct {
	store.Logins
	username string
}

func (l failingLogins) UserByName(ctx context.Context, username string) (store.User, error) {
	if username == l.username {
		return store.User{}, fmt.Errorf("%w: test outage", store.ErrUnavailable)
	}
	return l.Logins.UserByName(ctx, username)
}

// quietCache gives f's handler a cache of its own that only the test
// flushes, through the returned store's flush: the fixture's writes (and
// a login's new token) would otherwise reach the cache as flushes at
// moments the test does not choose. Lookups of failKey fail.
func quietCache(t testing.TB, f *fixture, failKey string) *watchingStore {
	t.Helper()
	if f.h.stopWatch != nil {
		f.h.stopWatch()
	}
	if _, err := caches.Delete(f.h.cacheKey); err != nil {
		t.Fatal(err)
	}
	ws := &watchingStore{Store: failingStore{Store: f.h.store, key: failKey}}
	f.h.store = ws
	f.h.Cache = &Cache{TTL: caddy.Duration(time.Hour), NegativeTTL: caddy.Duration(time.Hour)}
	if err := f.h.provisionCache("metrics " + f.path); err != nil {
		t.Fatal(err)
	}
	return ws
}

// A scripted mix of requests, through the token check and the login
// endpoint, is counted once per request under its outcome, in the registry
// the handler was provisioned with.
func TestMetricsCountEachOutcomeOnce(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/metrics-login", Throttle: "6/hour"}, func(h *TokenAuth) {
		h.FailureThrottle = "6/hour"
	})
	unavailableKey := randomKey(3)
	ws := quietCache(t, f, unavailableKey)
	f.h.logins = failingLogins{Logins: f.h.logins, username: "boom"}
	reg := f.ctx.GetMetricsRegistry()
	before := scrape(t, reg)

	type step struct {
		method, path, body string
		auth               string // the Authorization header, if any
		code               int
	}
	login := func(body string, code int) step { return step{http.MethodPost, "/metrics-login", body, "", code} }
	api := func(auth string, code int) step { return step{http.MethodGet, "/api/x", "", auth, code} }
	steps := []step{
		// the login endpoint, its throttle at 6 requests an hour
		login(`{"username":"carol","password":"`+testPassword+`"}`, 200),
		login(`{"username":"carol","password":"wrong"}`, 400),
		login(`{}`, 400),
		login(`{`, 400),
		login(`{"username":"boom","password":"x"}`, 503),
		{http.MethodPost, "/metrics-login", `{}`, "Token " + randomKey(4), 401}, // refused by the token check: no login budget spent
		{http.MethodOptions, "/metrics-login", "", "", 200},
		login(`{"username":"carol","password":"`+testPassword+`"}`, 429),
		// the token check
		api("Token "+f.alice, 200),
		api("Token "+f.alice, 200),
		api("Token "+f.alice, 200),
		api("", 401),
		api("", 401),
		api("Bearer "+f.alice, 401),
		api("Token", 401),
		api("Token a b", 401),
		api("Token "+f.alice+"\xb8", 401),
		api("Token "+unavailableKey, 503),
		// the failure budget of 6: one spent at the login endpoint above
		api("Token "+f.bob, 401),
		api("Token "+f.bob, 401),
		api("Token "+randomKey(1), 401),
		api("Token "+randomKey(1), 401),
		api("Token guess", 401),
		api("Token "+randomKey(2), 429),
	}
	for i, s := range steps {
		var headers []string
		if s.auth != "" {
			headers = []string{"Authorization", s.auth}
		}
		if r := f.send(t, s.method, s.path, jsonCT, s.body, headers...); r.code != s.code {
			t.Fatalf("step %d (%s %s %s): %d %s, want %d", i, s.method, s.path, s.auth, r.code, r.body, s.code)
		}
	}
	// Two changes pushed by the store; alice is looked up again.
	ws.flush()
	ws.flush()
	if r := f.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+f.alice); r.code != 200 {
		t.Fatalf("after the flushes: %d %s", r.code, r.body)
	}

	want := map[string]float64{
		"caddy_token_auth_requests_total{outcome=passed}":         4,
		"caddy_token_auth_requests_total{outcome=anonymous}":      7, // the login requests without a token
		"caddy_token_auth_requests_total{outcome=not_provided}":   3,
		"caddy_token_auth_requests_total{outcome=invalid_header}": 3,
		"caddy_token_auth_requests_total{outcome=invalid_token}":  4,
		"caddy_token_auth_requests_total{outcome=inactive}":       2,
		"caddy_token_auth_requests_total{outcome=throttled}":      1,
		"caddy_token_auth_requests_total{outcome=unavailable}":    1,

		"caddy_token_auth_cache_requests_total{result=hit}":  4, // alice twice, bob, the unknown key
		"caddy_token_auth_cache_requests_total{result=miss}": 7, // alice twice, bob, 4 unknown keys
		"caddy_token_auth_cache_flushes_total{cause=change}": 2,

		"caddy_token_auth_login_attempts_total{result=success}":         1,
		"caddy_token_auth_login_attempts_total{result=bad_credentials}": 1,
		"caddy_token_auth_login_attempts_total{result=invalid}":         2,
		"caddy_token_auth_login_attempts_total{result=unavailable}":     1,
		"caddy_token_auth_login_attempts_total{result=throttled}":       1,

		"caddy_token_auth_throttle_rejections_total{budget=login}":   1,
		"caddy_token_auth_throttle_rejections_total{budget=failure}": 1,
	}
	if d := diffCounts(counted(t, reg, before), want); d != "" {
		t.Fatalf("counts after the mix:%s", d)
	}
}

// An optional handler counts a request without credentials as anonymous,
// and a login body cut short or too large as invalid.
func TestMetricsCountOptionalAnonymousAndInvalidBodies(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/metrics-login", MaxBody: 16}, func(h *TokenAuth) { h.Optional = true })
	quietCache(t, f, "")
	reg := f.ctx.GetMetricsRegistry()
	before := scrape(t, reg)
	for _, s := range []struct {
		path, body string
		code       int
	}{
		{"/api/x", "", 200},
		{"/metrics-login", strings.Repeat("x", 17), 413},
		{"/metrics-login", `{"username":""}`, 400},
	} {
		if r := f.send(t, http.MethodPost, s.path, jsonCT, s.body); r.code != s.code {
			t.Fatalf("%s %q: %d %s, want %d", s.path, s.body, r.code, r.body, s.code)
		}
	}
	want := map[string]float64{
		"caddy_token_auth_requests_total{outcome=anonymous}":    3,
		"caddy_token_auth_login_attempts_total{result=invalid}": 2,
	}
	if d := diffCounts(counted(t, reg, before), want); d != "" {
		t.Fatalf("counts:%s", d)
	}
}

// A reload provisions handlers again on a registry that shows the
// collectors already (several handlers of one config do the same), or on
// the fresh registry of the next config: neither fails, and the counters go
// on counting from where they were.
func TestMetricsSurviveAReload(t *testing.T) {
	f := newFixture(t, nil, nil)
	reg := f.ctx.GetMetricsRegistry()
	passed := "caddy_token_auth_requests_total{outcome=passed}"
	if r := f.do(t, "Token "+f.alice); r.code != 200 {
		t.Fatalf("%+v", r)
	}
	first := scrape(t, reg)[passed]
	if first < 1 {
		t.Fatalf("%s = %v after a request that passed", passed, first)
	}

	provision := func(ctx caddy.Context) *TokenAuth {
		h := &TokenAuth{StoreRaw: json.RawMessage(`{"kind":"sqlite","path":"` + f.path + `"}`)}
		if err := h.Provision(ctx); err != nil {
			t.Fatalf("provisioning again: %v", err)
		}
		t.Cleanup(func() { h.Cleanup() })
		return h
	}
	same := provision(f.ctx) // the same registry
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	next := provision(ctx) // the next config's registry
	for _, h := range []*TokenAuth{same, next} {
		if r := (&fixture{h: h}).do(t, "Token "+f.alice); r.code != 200 {
			t.Fatalf("%+v", r)
		}
	}
	if got := scrape(t, reg)[passed]; got != first+2 {
		t.Fatalf("the first registry shows %s = %v, want %v", passed, got, first+2)
	}
	if got := scrape(t, ctx.GetMetricsRegistry())[passed]; got != first+2 {
		t.Fatalf("the next config's registry shows %s = %v, want %v", passed, got, first+2)
	}
}

// A registry that holds another collector of one of token_auth's names
// makes Provision fail with the cause, rather than hide the metric; no
// registry at all (a context caddy.NewContext did not make) is no error.
func TestMetricsRegistrationConflictFailsProvision(t *testing.T) {
	if err := registerMetrics(nil); err != nil {
		t.Fatalf("no registry: %v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "caddy_token_auth_requests_total", Help: "another"}, []string{"outcome"}))
	err := registerMetrics(reg)
	if err == nil || !strings.Contains(err.Error(), "registering token_auth metrics: ") {
		t.Fatalf("got %v, want the registry's refusal with context", err)
	}
}

// The entries gauge reads the caches when scraped: found identities and
// unknown keys, summed over the caches, with flushes seen at once.
func TestCacheEntriesAreCountedAtScrapeTime(t *testing.T) {
	f := newFixture(t, nil, nil)
	quietCache(t, f, "")
	g := newFixture(t, nil, nil)
	quietCache(t, g, "")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newCacheEntriesCollector(slices.Values([]*identityCache{f.h.cache, g.h.cache})))
	check := func(what string, found, unknown int) {
		t.Helper()
		want := fmt.Sprintf(`
# HELP caddy_token_auth_cache_entries %s
# TYPE caddy_token_auth_cache_entries gauge
caddy_token_auth_cache_entries{kind="found"} %d
caddy_token_auth_cache_entries{kind="unknown"} %d
`, cacheEntriesHelp, found, unknown)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	check("empty", 0, 0)
	for _, auth := range []string{f.alice, f.bob, randomKey(1), randomKey(2), randomKey(4)} {
		f.do(t, "Token "+auth)
	}
	g.do(t, "Token "+g.alice)
	g.do(t, "Token "+randomKey(3))
	check("after lookups", 3, 4) // alice twice, bob (inactive); four unknown keys
	f.h.cache.Flush()
	check("after a flush of one", 1, 1)

	// The process's collector reads the caches in the pool: both are.
	seen := 0
	for c := range pooledCaches {
		if c == f.h.cache || c == g.h.cache {
			seen++
		}
	}
	if seen != 2 {
		t.Fatalf("the pool yields %d of the two live caches", seen)
	}
}
