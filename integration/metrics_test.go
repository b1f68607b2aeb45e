package integration

import (
	"bufio"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/tokenauth/caddy-tokenauth/password"
)

// adminMetrics reads token_auth's series from Caddy's admin /metrics:
// `name{label="value"}` → value.
func adminMetrics(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	got := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_token_auth_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		got[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// metricsDelta is what each series of /metrics gained since before (the
// collectors are the process's: earlier tests' servers counted too).
func metricsDelta(t *testing.T, before map[string]float64) map[string]float64 {
	t.Helper()
	d := map[string]float64{}
	for k, v := range adminMetrics(t) {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

func compareMetrics(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("%s: %s moved by %v, want %v", what, k, got[k], want[k])
		}
	}
}

// A real Caddy counts a scripted mix of requests in its registry, and its
// admin endpoint's /metrics shows the exact count of every outcome.
func TestMetricsOnTheAdminEndpoint(t *testing.T) {
	s := newSite(t)
	const pw = "correct horse"
	enc, err := password.EncodePBKDF2SHA256(pw, "abcdefghijklmnopqrstuv", 1000)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", s.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE auth_user SET password = ? WHERE username = 'alice'`, enc); err != nil {
		t.Fatal(err)
	}
	tc := caddytest.NewTester(t)
	tc.InitServer(globalOptions+fmt.Sprintf(`
http://localhost:9080 {
	token_auth /api/* {
		store sqlite %[1]s
		login /api/login/ {
			throttle 4/min
		}
		failure_throttle 3/min
		cache {
			ttl 1m
			negative_ttl 1m
		}
	}
	token_auth /public/* {
		store sqlite %[1]s
		optional
		cache {
			ttl 1m
			negative_ttl 1m
		}
	}
	respond "ok"
}
`, s.dbPath), "caddyfile")

	before := adminMetrics(t)
	if _, ok := before[`caddy_token_auth_requests_total{outcome="passed"}`]; !ok {
		t.Fatalf("/metrics shows no caddy_token_auth_requests_total{outcome=\"passed\"}: %v", before)
	}
	key := func(i int) string { return fmt.Sprintf("Token %040x", i) }
	for i, s := range []struct {
		path, auth string
		code       int
	}{
		{"/api/x", "Token " + s.alice, 200},
		{"/api/x", "Token " + s.alice, 200},
		{"/api/x", "", 401},
		{"/api/x", "Token", 401},
		{"/public/x", "", 200},
		{"/public/x", "Token " + s.alice, 200},
		{"/api/x", "Token " + s.bob, 401}, // the failure budget of 3: 1
		{"/api/x", key(1), 401},           // 2
		{"/public/x", key(1), 401},        // no failure_throttle here
		{"/api/x", key(2), 401},           // 3
		{"/api/x", key(3), 429},           // over
	} {
		var h []string
		if s.auth != "" {
			h = []string{"Authorization", s.auth}
		}
		if resp, body := get(t, tc, s.path, h...); resp.StatusCode != s.code {
			t.Fatalf("request %d (%s %q): %d %s, want %d", i, s.path, s.auth, resp.StatusCode, body, s.code)
		}
	}
	for i, l := range []struct {
		body string
		code int
	}{
		{`{"username":"alice","password":"` + pw + `"}`, 200},
		{`{"username":"alice","password":"wrong"}`, 400},
		{`{"username":"alice"}`, 400},
		{`{"username":"alice","password":"` + pw + `"}`, 200},
		{`{"username":"alice","password":"` + pw + `"}`, 429}, // the 5th at 4/min
	} {
		resp, err := tc.Client.Post("http://localhost:9080/api/login/", "application/json", strings.NewReader(l.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != l.code {
			t.Fatalf("login %d (%s): %d %s, want %d", i, l.body, resp.StatusCode, body, l.code)
		}
	}
	compareMetrics(t, "after the mix", metricsDelta(t, before), map[string]float64{
		`caddy_token_auth_requests_total{outcome="passed"}`:         3,
		`caddy_token_auth_requests_total{outcome="anonymous"}`:      6, // /public/ without a token, and the 5 logins
		`caddy_token_auth_requests_total{outcome="not_provided"}`:   1,
		`caddy_token_auth_requests_total{outcome="invalid_header"}`: 1,
		`caddy_token_auth_requests_total{outcome="inactive"}`:       1,
		`caddy_token_auth_requests_total{outcome="invalid_token"}`:  3,
		`caddy_token_auth_requests_total{outcome="throttled"}`:      1,

		`caddy_token_auth_cache_requests_total{result="hit"}`:  3, // alice twice, key 1 on /public/ (one cache for both routes)
		`caddy_token_auth_cache_requests_total{result="miss"}`: 5, // alice, bob, keys 1-3
		`caddy_token_auth_cache_entries{kind="found"}`:         2, // alice, bob
		`caddy_token_auth_cache_entries{kind="unknown"}`:       3,

		`caddy_token_auth_login_attempts_total{result="success"}`:         2,
		`caddy_token_auth_login_attempts_total{result="bad_credentials"}`: 1,
		`caddy_token_auth_login_attempts_total{result="invalid"}`:         1,
		`caddy_token_auth_login_attempts_total{result="throttled"}`:       1,

		`caddy_token_auth_throttle_rejections_total{budget="login"}`:   1,
		`caddy_token_auth_throttle_rejections_total{budget="failure"}`: 1,
	})

	// Django deletes bob's token: the store pushes the change to each of
	// the two handlers' subscriptions, and each flushes the cache they
	// share.
	mid := adminMetrics(t)
	if _, err := db.Exec(`DELETE FROM authtoken_token WHERE key = ?`, s.bob); err != nil {
		t.Fatal(err)
	}
	flushes := `caddy_token_auth_cache_flushes_total{cause="change"}`
	for deadline := time.Now().Add(5 * time.Second); adminMetrics(t)[flushes] < mid[flushes]+2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s moved by %v in 5s after a change, want 2", flushes, adminMetrics(t)[flushes]-mid[flushes])
		}
	}
	compareMetrics(t, "after a change", metricsDelta(t, mid), map[string]float64{
		flushes: 2,
		`caddy_token_auth_cache_entries{kind="found"}`:   -2,
		`caddy_token_auth_cache_entries{kind="unknown"}`: -3,
	})
}
