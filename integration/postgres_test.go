package integration

// token_auth with a real PostgreSQL behind it: outages (the server stopped,
// or frozen so that it answers nothing), config reloads under load, and the
// `caddy token` command line with a Caddyfile that names the store.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// pgResult is one request's answer as the tests judge it.
type pgResult struct {
	status     int
	body       string
	retryAfter string
	ctype      string
	took       time.Duration
	err        error
}

// pgGet sends GET / with the key, on client.
func pgGet(client *http.Client, key string) pgResult {
	req, _ := http.NewRequest(http.MethodGet, "http://localhost:9080/", nil)
	req.Header.Set("Authorization", "Token "+key)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return pgResult{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return pgResult{
		status:     resp.StatusCode,
		body:       string(body),
		retryAfter: resp.Header.Get("Retry-After"),
		ctype:      resp.Header.Get("Content-Type"),
		took:       time.Since(start),
		err:        err,
	}
}

// checkUnavailable tells what is wrong with r as token_auth's answer when
// the store cannot answer: 503, Retry-After with a positive number of
// seconds, and a JSON {"detail": "…"} body.
func checkUnavailable(r pgResult) string {
	if r.err != nil {
		return r.err.Error()
	}
	if r.status != http.StatusServiceUnavailable {
		return fmt.Sprintf("status %d (%q), want 503", r.status, r.body)
	}
	if n, err := strconv.Atoi(r.retryAfter); err != nil || n <= 0 {
		return fmt.Sprintf("Retry-After %q, want a positive number of seconds", r.retryAfter)
	}
	if r.ctype != "application/json" {
		return fmt.Sprintf("Content-Type %q, want application/json", r.ctype)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		return fmt.Sprintf("body %q is not JSON: %v", r.body, err)
	}
	if d, ok := body["detail"].(string); !ok || d == "" || len(body) != 1 {
		return fmt.Sprintf("body %q, want {\"detail\": \"…\"}", r.body)
	}
	return ""
}

// pgRestore loads a config without token_auth when the test ends, so that
// the store's pool is let go before its database or cluster goes away.
func pgRestore(t *testing.T) {
	t.Cleanup(func() { _ = loadConfig(globalOptions + "http://localhost:9080 {\n\trespond ok\n}\n") })
}

// pgClient is a client with keep-alive and a bound on every request.
func pgClient() *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
}

// The database goes away and comes back, for a Caddy started while it was
// down and for one that was serving: each request gets a well-formed 503
// within query_timeout, never a 401 or a pass, and 200s come back without a
// reload once the server is up. Freezing the server (connections accepted,
// nothing answered) exercises the timeout itself.
func TestPostgresOutageGives503WithinQueryTimeoutAndRecoversWithoutReload(t *testing.T) {
	cluster := pgStartPrivateCluster(t)
	_, dsn := pgFreshDatabase(t, cluster.dsn)
	key := pgSeed(t, dsn, "alice")["alice"]

	const queryTimeout = time.Second
	// Slack for a loaded test machine (-race, parallel packages): a 503
	// must come within query_timeout plus this.
	const slack = 750 * time.Millisecond
	client := pgClient()
	defer client.CloseIdleConnections()

	// Each step needs the state the one before it left (the server
	// stopped, started, frozen): they are steps of this test, not
	// subtests, and every failure names its step.
	var step string
	begin := func(name string) {
		t.Helper()
		step = name
		t.Logf("step %s", name)
	}

	// expect503 sends n requests and checks each answer and its latency.
	expect503 := func(n int) (worst time.Duration) {
		t.Helper()
		for range n {
			r := pgGet(client, key)
			if msg := checkUnavailable(r); msg != "" {
				t.Fatalf("step %s: while PostgreSQL is down: %s", step, msg)
			}
			if r.took > queryTimeout+slack {
				t.Errorf("step %s: 503 took %v, query_timeout is %v", step, r.took, queryTimeout)
			}
			worst = max(worst, r.took)
		}
		return worst
	}
	// expectRecovery waits (bounded) for the first 200, then wants n 200s
	// in a row.
	expectRecovery := func(n int) time.Duration {
		t.Helper()
		start := time.Now()
		deadline := start.Add(20 * time.Second)
		for {
			r := pgGet(client, key)
			if r.err == nil && r.status == http.StatusOK {
				break
			}
			if r.err == nil && r.status != http.StatusServiceUnavailable {
				t.Fatalf("step %s: while PostgreSQL comes back: %d %q, want 503 or 200", step, r.status, r.body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("step %s: no 200 within 20s of PostgreSQL's start; last answer %d %q %v", step, r.status, r.body, r.err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		first := time.Since(start)
		for i := range n {
			if r := pgGet(client, key); r.err != nil || r.status != http.StatusOK || r.body != "user=alice" {
				t.Fatalf("step %s: request %d after recovery: %d %q %v, want 200 user=alice", step, i, r.status, r.body, r.err)
			}
		}
		return first
	}

	begin("down since Caddy started: 503 in time")
	cluster.stop(t)
	cfg := globalOptions + fmt.Sprintf(`
http://localhost:9080 {
	token_auth {
		store postgres {
			dsn %q
			query_timeout %s
		}
		cache off
	}
	respond "user={http.auth.user.username}"
}
`, dsn, queryTimeout)
	tc := caddytest.NewTester(t)
	tc.InitServer(globalOptions+"http://localhost:9080 {\n\trespond ok\n}\n", "caddyfile")
	pgRestore(t)
	loadStart := time.Now()
	if err := loadConfig(cfg); err != nil {
		t.Fatalf("step %s: Caddy did not start while PostgreSQL was down: %v", step, err)
	}
	t.Logf("config with PostgreSQL down loaded in %v", time.Since(loadStart))
	t.Logf("slowest 503: %v (query_timeout %v)", expect503(5), queryTimeout)

	begin("started: 200 without a reload")
	cluster.start(t)
	t.Logf("first 200 %v after pg_ctl start returned", expectRecovery(20))

	begin("stopped while serving: 503 in time")
	cluster.stop(t)
	t.Logf("slowest 503: %v (query_timeout %v)", expect503(5), queryTimeout)

	begin("started again: 200 without a reload")
	cluster.start(t)
	t.Logf("first 200 %v after pg_ctl start returned", expectRecovery(20))

	begin("frozen while serving: 503 within query_timeout")
	cluster.freeze(t)
	// Thawed before pgRestore lets the pool go, should a check stop the
	// test here.
	t.Cleanup(cluster.thaw)
	t.Logf("slowest 503: %v (query_timeout %v)", expect503(3), queryTimeout)

	begin("thawed: 200 without a reload")
	cluster.thaw()
	t.Logf("first 200 %v after the thaw", expectRecovery(20))

	begin("stopped under concurrent load: only 200s and 503s, all in time")
	var (
		mu      sync.Mutex
		counts  = map[int]int{}
		worst   time.Duration
		bad     []string
		stop    atomic.Bool
		wg      sync.WaitGroup
		phase   atomic.Int32 // 0 up, 1 down, 2 up again
		byPhase [3]map[int]int
	)
	for i := range byPhase {
		byPhase[i] = map[int]int{}
	}
	deadline := time.Now().Add(60 * time.Second)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := pgClient()
			defer c.CloseIdleConnections()
			for n := 0; n < 5000 && !stop.Load() && time.Now().Before(deadline); n++ {
				p := phase.Load()
				r := pgGet(c, key)
				mu.Lock()
				counts[r.status]++
				byPhase[p][r.status]++
				switch {
				case r.err != nil:
					bad = append(bad, r.err.Error())
				case r.status == http.StatusOK:
					if r.body != "user=alice" {
						bad = append(bad, "200 with body "+r.body)
					}
				default:
					if msg := checkUnavailable(r); msg != "" {
						bad = append(bad, msg)
					}
					worst = max(worst, r.took)
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	phase.Store(1)
	cluster.stop(t)
	time.Sleep(2 * queryTimeout)
	phase.Store(2)
	cluster.start(t)
	// Long enough for the pool to reconnect and serve for a while.
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()

	t.Logf("answers by status: %v; up %v, down %v, up again %v; slowest 503 %v (query_timeout %v)",
		counts, byPhase[0], byPhase[1], byPhase[2], worst, queryTimeout)
	if len(bad) > 0 {
		t.Errorf("step %s: %d bad answers, first: %s", step, len(bad), bad[0])
	}
	if worst > queryTimeout+slack {
		t.Errorf("step %s: slowest 503 took %v, query_timeout is %v", step, worst, queryTimeout)
	}
	if byPhase[1][http.StatusServiceUnavailable] == 0 {
		t.Errorf("step %s: no 503 while PostgreSQL was stopped", step)
	}
	if byPhase[0][http.StatusOK] == 0 || byPhase[2][http.StatusOK] == 0 {
		t.Errorf("step %s: no 200 before the stop or after the start", step)
	}
	expectRecovery(20)
}

// 50 config reloads through the admin API while clients keep sending
// requests: no request fails (every answer is 200 with the user; a
// connection that Caddy's core drops during a reload is retried once and
// counted), and the pool, shared across the old and the new config, keeps
// the server connections to the database within max_conns.
func TestPostgresReloadsUnderLoadKeepConnectionsBounded(t *testing.T) {
	shared := pgDSN(t)
	dbName, dsn := pgFreshDatabase(t, shared)
	key := pgSeed(t, dsn, "alice")["alice"]
	const (
		maxConns = 4
		reloads  = 50
		workers  = 8
	)
	config := func(gen int) string {
		return globalOptions + fmt.Sprintf(`
http://localhost:9080 {
	token_auth {
		store postgres {
			dsn %q
			max_conns %d
			query_timeout 5s
		}
		cache off
	}
	respond "user={http.auth.user.username} gen=%d"
}
`, dsn, maxConns, gen)
	}
	tc := caddytest.NewTester(t)
	pgRestore(t)
	tc.InitServer(config(0), "caddyfile")
	if t.Failed() {
		t.FailNow()
	}

	// The watcher counts backends from a connection to another database,
	// so that it is not one of them.
	watcher := pgConnect(t, shared)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		maxBackends atomic.Int64
		samples     atomic.Int64
		watchErr    atomic.Value
		watchDone   = make(chan struct{})
	)
	go func() {
		defer close(watchDone)
		for ctx.Err() == nil {
			n, err := pgBackends(ctx, watcher, dbName)
			if err != nil {
				if ctx.Err() == nil {
					watchErr.Store(err)
				}
				return
			}
			samples.Add(1)
			if int64(n) > maxBackends.Load() {
				maxBackends.Store(int64(n))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		ok, fail atomic.Int64
		drops    atomic.Int64
		mu       sync.Mutex
		failures []string
		dropErrs []string
		gens     = map[string]bool{}
	)
	deadline := time.Now().Add(2 * time.Minute)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := pgClient()
			defer c.CloseIdleConnections()
			for n := 0; n < 20000 && !stop.Load() && time.Now().Before(deadline); n++ {
				r := pgGet(c, key)
				if r.err != nil {
					// Caddy's core drops the odd connection while it
					// hands the listener to the new config (EOF or a
					// reset, no response: seen with a plain `respond`
					// site and a 5s grace period too). token_auth
					// cannot cause that; a client retries it.
					drops.Add(1)
					mu.Lock()
					dropErrs = append(dropErrs, r.err.Error())
					mu.Unlock()
					c.CloseIdleConnections()
					r = pgGet(c, key)
				}
				if r.err == nil && r.status == http.StatusOK && strings.HasPrefix(r.body, "user=alice gen=") {
					ok.Add(1)
					mu.Lock()
					gens[r.body] = true
					mu.Unlock()
					continue
				}
				fail.Add(1)
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%d %q %v", r.status, r.body, r.err))
				mu.Unlock()
			}
		}()
	}

	var loadTimes []time.Duration
	for gen := 1; gen <= reloads && time.Now().Before(deadline); gen++ {
		start := time.Now()
		if err := loadConfig(config(gen)); err != nil {
			t.Errorf("reload %d: %v", gen, err)
			break
		}
		loadTimes = append(loadTimes, time.Since(start))
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	cancel()
	<-watchDone

	sort.Slice(loadTimes, func(i, j int) bool { return loadTimes[i] < loadTimes[j] })
	if len(loadTimes) != reloads {
		t.Errorf("%d reloads done, want %d", len(loadTimes), reloads)
	} else {
		t.Logf("reload time: median %v, max %v", loadTimes[reloads/2], loadTimes[reloads-1])
	}
	t.Logf("requests: %d ok, %d failed; configs seen by clients: %d; pg_stat_activity for %s: max %d backends over %d samples (max_conns %d)",
		ok.Load(), fail.Load(), len(gens), dbName, maxBackends.Load(), samples.Load(), maxConns)
	if err, _ := watchErr.Load().(error); err != nil {
		t.Errorf("counting backends: %v", err)
	}
	if drops.Load() > 0 {
		t.Logf("%d connections dropped by Caddy during reloads and retried, first: %s", drops.Load(), dropErrs[0])
	}
	if fail.Load() > 0 {
		t.Errorf("%d requests failed during reloads, first: %s", fail.Load(), failures[0])
	}
	if total := ok.Load() + fail.Load(); drops.Load()*100 > total {
		t.Errorf("%d of %d requests lost their connection during reloads: more than 1%%", drops.Load(), total)
	}
	if ok.Load() < reloads {
		t.Errorf("only %d requests succeeded: the load did not overlap the reloads", ok.Load())
	}
	if len(gens) < 2 {
		t.Errorf("clients saw %d configs: the reloads did not take effect under load", len(gens))
	}
	if maxBackends.Load() > maxConns {
		t.Errorf("up to %d server connections to the database, max_conns is %d", maxBackends.Load(), maxConns)
	}
	if samples.Load() == 0 || maxBackends.Load() == 0 {
		t.Error("the watcher never saw the store's connections")
	}
}

// `caddy token` finds the PostgreSQL store in a Caddyfile (the block form,
// as a user writes it), and a Caddy serving that Caddyfile accepts the
// token it made; --store postgres://… reaches the same tables.
func TestPostgresCaddyTokenWithConfig(t *testing.T) {
	_, dsn := pgFreshDatabase(t, pgDSN(t))
	site := fmt.Sprintf(`
http://localhost:9080 {
	token_auth {
		store postgres {
			dsn %q
			max_conns 2
			query_timeout 3s
		}
	}
	respond "user={http.auth.user.username}"
}
`, dsn)
	caddyfile := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(globalOptions+site), 0o644); err != nil {
		t.Fatal(err)
	}
	withConfig := []string{"--config", caddyfile, "--adapter", "caddyfile"}

	t.Run("without tables, create says so", func(t *testing.T) {
		_, errOut, code := djangoCaddyCLI(t, "", append([]string{"token", "create", "dave"}, withConfig...)...)
		if code != 1 || !strings.Contains(errOut, "no table auth_user") {
			t.Errorf("exit %d, stderr %q; want 1 and the missing table named", code, errOut)
		}
	})
	if out := djangoTokenCLI(t, "", append([]string{"migrate"}, withConfig...)...); !strings.Contains(out, "auth_user, authtoken_token") {
		t.Fatalf("migrate: %q", out)
	}
	key := djangoGenerated(t, djangoTokenCLI(t, "s3cret pass\n", append([]string{"adduser", "dave", "--password-stdin"}, withConfig...)...), "dave")

	t.Run("create with --config returns the existing key", func(t *testing.T) {
		if again := djangoGenerated(t, djangoTokenCLI(t, "", append([]string{"create", "dave"}, withConfig...)...), "dave"); again != key {
			t.Errorf("create gave %s, want the existing %s", again, key)
		}
	})
	t.Run("create with --store postgres:// sees the same user", func(t *testing.T) {
		if again := djangoGenerated(t, djangoTokenCLI(t, "", "create", "dave", "--store", dsn), "dave"); again != key {
			t.Errorf("create --store gave %s, want %s", again, key)
		}
	})
	t.Run("list with --config", func(t *testing.T) {
		if out := djangoTokenCLI(t, "", append([]string{"list", "--show-keys"}, withConfig...)...); !strings.Contains(out, "dave") || !strings.Contains(out, key) {
			t.Errorf("list:\n%s", out)
		}
	})

	tc := caddytest.NewTester(t)
	pgRestore(t)
	tc.InitServer(globalOptions+site, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	client := pgClient()
	defer client.CloseIdleConnections()
	t.Run("Caddy accepts the key", func(t *testing.T) {
		if r := pgGet(client, key); r.err != nil || r.status != http.StatusOK || r.body != "user=dave" {
			t.Errorf("got %d %q %v, want 200 user=dave", r.status, r.body, r.err)
		}
	})
	t.Run("delete with --config, and Caddy refuses the key", func(t *testing.T) {
		if out := djangoTokenCLI(t, "", append([]string{"delete", "dave"}, withConfig...)...); out != "Deleted token for user dave\n" {
			t.Errorf("delete: %q", out)
		}
		r := pgGet(client, key)
		if r.err != nil || r.status != http.StatusUnauthorized || r.body != `{"detail":"Invalid token."}` {
			t.Errorf("got %d %q %v, want 401 Invalid token.", r.status, r.body, r.err)
		}
	})
}
