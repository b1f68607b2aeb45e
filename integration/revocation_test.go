package integration

// Revocation across Caddy instances: two Caddy processes share one
// PostgreSQL database, each with its own cache of lookups; a token revoked
// by anyone (`caddy token`, Django's SQL) stops working on both within
// 100ms, through the store's NOTIFY triggers; and each holds, under load,
// max_conns connections in its pool and one for its notify listener.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// revocationCaddy is a `caddy run` subprocess serving token_auth on
// 127.0.0.1.
type revocationCaddy struct {
	name   string
	url    string
	client *http.Client
}

// revocationFreePort is a TCP port on 127.0.0.1 that nothing listened on
// a moment ago: another process may take it before Caddy binds it, and
// revocationStartCaddy then tries again with new ports.
func revocationFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// revocationMaxConns is each instance's pool size.
const revocationMaxConns = 3

// errRevocationPortTaken is a start-up that failed because a port was
// taken between revocationFreePort and Caddy's bind.
var errRevocationPortTaken = errors.New("a port was taken before caddy bound it")

// revocationStartCaddy runs the built caddy with a Caddyfile whose
// token_auth uses the postgres store of dsn with notify, a cache and
// max_conns revocationMaxConns, under the application_name
// "caddy_<name>"; it is stopped (by its PID) when the test ends. When a
// port it was given is taken by the time it binds, it starts again on
// new ones.
func revocationStartCaddy(t *testing.T, name, dsn string) *revocationCaddy {
	t.Helper()
	return revocationStartCaddySite(t, name, dsn, revocationSite)
}

// revocationStartCaddyWith is revocationStartCaddy with more token_auth
// options (lines of the token_auth block).
func revocationStartCaddyWith(t *testing.T, name, dsn, options string) *revocationCaddy {
	t.Helper()
	site := strings.Replace(revocationSite, "\t}\n\trespond", strings.ReplaceAll(options, "%", "%%")+"\n\t}\n\trespond", 1)
	return revocationStartCaddySite(t, name, dsn, site)
}

// revocationSite is the site of revocationStartCaddy, with %[1]s where
// the store block goes.
const revocationSite = `	token_auth {
		%[1]s
		cache {
			ttl 30s
			negative_ttl 5s
		}
	}
	respond "ok {http.auth.user.username}"
`

// revocationStartCaddySite is revocationStartCaddy serving site (with
// %[1]s for the store block, as many times as it likes), which must
// answer GET / without credentials with 401.
func revocationStartCaddySite(t *testing.T, name, dsn, site string) *revocationCaddy {
	t.Helper()
	const attempts = 5
	for attempt := 1; ; attempt++ {
		c, err := revocationTryCaddy(t, name, dsn, site)
		if err == nil {
			return c
		}
		if !errors.Is(err, errRevocationPortTaken) || attempt == attempts {
			t.Fatalf("caddy %s, attempt %d: %v", name, attempt, err)
		}
		t.Logf("caddy %s, attempt %d: %v; trying new ports", name, attempt, err)
	}
}

// revocationTryCaddy is one attempt of revocationStartCaddy.
func revocationTryCaddy(t *testing.T, name, dsn, site string) (*revocationCaddy, error) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", "caddy_"+name)
	u.RawQuery = q.Encode()
	dir := t.TempDir()
	adminPort, port := revocationFreePort(t), revocationFreePort(t)
	caddyfile := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	skip_install_trust
	grace_period 1ns
}

http://127.0.0.1:%d {
%s}
`, adminPort, port, fmt.Sprintf(site, fmt.Sprintf("store postgres {\n\t\t\tdsn %q\n\t\t\tmax_conns %d\n\t\t\tnotify\n\t\t}", u.String(), revocationMaxConns)))
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "caddy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(caddyBinary(t), "run", "--config", config, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting caddy %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	readLog := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("caddy %s log:\n%s", name, readLog())
		}
	})

	c := &revocationCaddy{
		name:   name,
		url:    fmt.Sprintf("http://127.0.0.1:%d/", port),
		client: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}},
	}
	t.Cleanup(c.client.CloseIdleConnections)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			log := readLog()
			if strings.Contains(log, "address already in use") {
				return nil, fmt.Errorf("%w (admin %d, http %d)", errRevocationPortTaken, adminPort, port)
			}
			return nil, fmt.Errorf("exited at start:\n%s", log)
		default:
		}
		if status, _, err := c.get(""); err == nil && status == http.StatusUnauthorized {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("does not answer on %s after 30s:\n%s", c.url, readLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get sends GET / with the key (none when empty).
func (c *revocationCaddy) get(key string) (status int, body string, err error) {
	req, _ := http.NewRequest(http.MethodGet, c.url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Token "+key)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// expectOK checks that the key passes as username.
func (c *revocationCaddy) expectOK(t *testing.T, key, username string) {
	t.Helper()
	status, body, err := c.get(key)
	if err != nil || status != http.StatusOK || body != "ok "+username {
		t.Fatalf("caddy %s: %d %q %v, want 200 \"ok %s\"", c.name, status, body, err, username)
	}
}

// revocationWaitListening waits until the listener of caddy name has run
// its LISTEN, as the database shows it.
func revocationWaitListening(t *testing.T, db *pgx.Conn, name string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		err := db.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND query LIKE 'LISTEN %'`, "caddy_"+name).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy %s: no LISTEN after 20s", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// until401 polls every 2ms until the key is refused, and returns when the
// refusal was seen and with what body.
func (c *revocationCaddy) until401(key string, limit time.Duration) (at time.Time, body string, err error) {
	deadline := time.Now().Add(limit)
	for {
		status, b, err := c.get(key)
		now := time.Now()
		if err == nil && status == http.StatusUnauthorized {
			return now, b, nil
		}
		if now.After(deadline) {
			return time.Time{}, "", fmt.Errorf("still %d %q (%v) after %v", status, b, err, limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// revocationPercentiles returns the median and the 99th percentile
// (nearest rank).
func revocationPercentiles(ds []time.Duration) (median, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return rank(0.5), rank(0.99)
}

// Two Caddy instances cache lookups from one PostgreSQL database (ttl 30s);
// 50 times a token is revoked, in turn by `caddy token create -r`, by a
// DELETE as Django runs it, and by deactivating the user, and both
// instances refuse it within 100ms (p99).
func TestRevocationReachesEveryCaddyWithin100ms(t *testing.T) {
	_, dsn := pgFreshDatabase(t, pgDSN(t))
	ctx := context.Background()

	// The tables and triggers, as an operator installs them.
	out, errOut, code := djangoCaddyCLI(t, "", "token", "migrate", "--notify", "--store", dsn)
	if code != 0 || !strings.Contains(out, "Triggers token_auth_notify") {
		t.Fatalf("caddy token migrate --notify: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	const n = 50
	users := []string{"control"}
	for i := range n {
		users = append(users, fmt.Sprintf("user%02d", i))
	}
	keys := pgSeed(t, dsn, users...)
	django := pgConnect(t, dsn)

	a := revocationStartCaddy(t, "A", dsn)
	b := revocationStartCaddy(t, "B", dsn)
	instances := []*revocationCaddy{a, b}
	// A listener flushes its cache once LISTEN works (what came before
	// could have been missed): the caches are filled after that, and the
	// control token, which the first subtest needs cached, last.
	for _, c := range instances {
		revocationWaitListening(t, django, c.name)
	}
	for _, c := range instances {
		for _, u := range append(users[1:], users[0]) {
			c.expectOK(t, keys[u], u)
		}
	}

	// The control token's steps need the revocations between them (the
	// last wants it flushed by them): they are steps of this test, not
	// subtests, and their failures name them.
	//
	// Without a notification the caches keep a deleted token: what
	// follows measures the pushes, not the lack of a cache.
	const stepHeld = "the caches hold a token deleted without a notification"
	t.Logf("step %s", stepHeld)
	if _, err := django.Exec(ctx, `ALTER TABLE "authtoken_token" DISABLE TRIGGER "token_auth_notify"`); err != nil {
		t.Fatalf("step %s: %v", stepHeld, err)
	}
	_, err := django.Exec(ctx, `DELETE FROM "authtoken_token" WHERE "key" = $1`, keys["control"])
	if _, err2 := django.Exec(ctx, `ALTER TABLE "authtoken_token" ENABLE TRIGGER "token_auth_notify"`); err2 != nil {
		t.Fatalf("step %s: %v", stepHeld, err2)
	}
	if err != nil {
		t.Fatalf("step %s: %v", stepHeld, err)
	}
	time.Sleep(200 * time.Millisecond)
	for _, c := range instances {
		if status, body, err := c.get(keys["control"]); err != nil || status != http.StatusOK {
			t.Errorf("step %s: caddy %s: %d %q %v, want the cached 200", stepHeld, c.name, status, body, err)
		}
	}

	methods := []struct {
		name   string
		detail string // the 401's body
		revoke func(t *testing.T, username, key string) time.Time
	}{
		{"caddy token create -r", `{"detail":"Invalid token."}`, func(t *testing.T, username, _ string) time.Time {
			out, errOut, code := djangoCaddyCLI(t, "", "token", "create", "-r", username, "--store", dsn)
			if code != 0 || !strings.Contains(out, "Generated token") {
				t.Fatalf("caddy token create -r %s: exit %d\nstdout: %s\nstderr: %s", username, code, out, errOut)
			}
			// The commit is behind us; the process's start is not part
			// of the revocation's latency.
			return time.Now()
		}},
		{"DELETE (Django)", `{"detail":"Invalid token."}`, func(t *testing.T, _, key string) time.Time {
			begin := time.Now()
			if _, err := django.Exec(ctx, `DELETE FROM "authtoken_token" WHERE "key" IN ($1)`, key); err != nil {
				t.Fatal(err)
			}
			return begin
		}},
		{"is_active=false", `{"detail":"User inactive or deleted."}`, func(t *testing.T, username, _ string) time.Time {
			begin := time.Now()
			if _, err := django.Exec(ctx, `UPDATE "auth_user" SET "is_active" = false WHERE "username" = $1`, username); err != nil {
				t.Fatal(err)
			}
			return begin
		}},
	}

	const stepRevoked = "50 revocations reach both instances"
	t.Logf("step %s", stepRevoked)
	var all []time.Duration
	byMethod := make(map[string][]time.Duration)
	for i := range n {
		u := users[i+1]
		m := methods[i%len(methods)]
		for _, c := range instances {
			c.expectOK(t, keys[u], u) // cached (or cached again after a flush)
		}
		begin := m.revoke(t, u, keys[u])
		var wg sync.WaitGroup
		lat := make([]time.Duration, len(instances))
		errs := make([]error, len(instances))
		for j, c := range instances {
			wg.Add(1)
			go func() {
				defer wg.Done()
				at, body, err := c.until401(keys[u], 3*time.Second)
				switch {
				case err != nil:
					errs[j] = fmt.Errorf("caddy %s: %w", c.name, err)
				case body != m.detail:
					errs[j] = fmt.Errorf("caddy %s: 401 %q, want %s", c.name, body, m.detail)
				}
				lat[j] = at.Sub(begin)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("step %s: revocation %d (%s of %s): %v", stepRevoked, i, m.name, u, err)
			}
		}
		all = append(all, lat...)
		byMethod[m.name] = append(byMethod[m.name], lat...)
	}

	med, p99 := revocationPercentiles(all)
	t.Logf("revocation → 401 on the other instances, %d revocations × %d instances: median %v, p99 %v", n, len(instances), med, p99)
	for _, m := range methods {
		mm, mp := revocationPercentiles(byMethod[m.name])
		t.Logf("  %-22s median %v, p99 %v", m.name, mm, mp)
	}
	if p99 > 100*time.Millisecond {
		t.Errorf("step %s: p99 revocation latency %v, want ≤ 100ms", stepRevoked, p99)
	}

	const stepFlushed = "the control token was flushed with the others"
	t.Logf("step %s", stepFlushed)
	for _, c := range instances {
		if status, body, err := c.get(keys["control"]); err != nil || status != http.StatusUnauthorized {
			t.Errorf("step %s: caddy %s: %d %q %v, want 401", stepFlushed, c.name, status, body, err)
		}
	}

	// The pool stays within max_conns; the notify listener's connection
	// is one more, outside it. A subtest: it needs only the instances.
	t.Run("under load each instance holds max_conns + 1 connections", func(t *testing.T) {
		revocationBackendsUnderLoad(t, instances)
	})
}

// revocationBackendsUnderLoad sends the instances unknown keys (each one a
// lookup: the cache has not seen it) from 16 clients each for 500ms while
// it counts each instance's backends in pg_stat_activity (by
// application_name), and wants max_conns + 1 of them, during the load and
// after.
func revocationBackendsUnderLoad(t *testing.T, instances []*revocationCaddy) {
	const workers = 16
	counter := pgConnect(t, pgDSN(t))
	ctx := context.Background()
	names := make([]string, len(instances))
	for i, c := range instances {
		names[i] = "caddy_" + c.name
	}
	backends := func() (map[string]int, error) {
		rows, err := counter.Query(ctx, `SELECT application_name, count(*) FROM pg_stat_activity WHERE application_name = ANY($1) AND backend_type = 'client backend' GROUP BY 1`, names)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		n := make(map[string]int)
		for rows.Next() {
			var name string
			var count int
			if err := rows.Scan(&name, &count); err != nil {
				return nil, err
			}
			n[name] = count
		}
		return n, rows.Err()
	}

	var (
		wg       sync.WaitGroup
		done     = make(chan struct{})
		mu       sync.Mutex
		requests int
		failures []string
	)
	for _, c := range instances {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
		t.Cleanup(client.CloseIdleConnections)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var b [20]byte
				for {
					select {
					case <-done:
						return
					default:
					}
					_, _ = rand.Read(b[:])
					req, _ := http.NewRequest(http.MethodGet, c.url, nil)
					req.Header.Set("Authorization", "Token "+hex.EncodeToString(b[:]))
					status := 0
					resp, err := client.Do(req)
					if err == nil {
						status = resp.StatusCode
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					mu.Lock()
					requests++
					if err != nil || status != http.StatusUnauthorized {
						failures = append(failures, fmt.Sprintf("caddy %s: %d %v", c.name, status, err))
					}
					mu.Unlock()
				}
			}()
		}
	}
	most := make(map[string]int)
	samples := 0
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); samples++ {
		n, err := backends()
		if err != nil {
			close(done)
			wg.Wait()
			t.Fatal(err)
		}
		for name, count := range n {
			most[name] = max(most[name], count)
		}
	}
	close(done)
	wg.Wait()
	after, err := backends()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests with unknown keys, %d clients per instance; backends over %d samples: at most %v, after the load %v (max_conns %d)",
		requests, workers, samples, most, after, revocationMaxConns)
	if len(failures) > 0 {
		t.Errorf("%d of %d requests did not get 401, first: %s", len(failures), requests, failures[0])
	}
	for _, name := range names {
		if most[name] != revocationMaxConns+1 || after[name] != revocationMaxConns+1 {
			t.Errorf("%s: at most %d backends, %d after the load; want max_conns + 1 = %d", name, most[name], after[name], revocationMaxConns+1)
		}
	}
}
