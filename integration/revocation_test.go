package integration

// Revocation across Caddy instances: two Caddy processes share one
// PostgreSQL database, each with its own cache of lookups; a token revoked
// by anyone (`caddy token`, Django's SQL) stops working on both within
// 100ms, through the store's NOTIFY triggers.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// revocationCaddy is a `caddy run` subprocess serving token_auth on
// 127.0.0.1.
type revocationCaddy struct {
	name   string
	url    string
	client *http.Client
}

// revocationFreePort is a TCP port on 127.0.0.1 that nothing listens on.
func revocationFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// revocationStartCaddy runs the built caddy with a Caddyfile whose
// token_auth uses the postgres store of dsn with notify and a cache; it is
// stopped (by its PID) when the test ends.
func revocationStartCaddy(t *testing.T, name, dsn string) *revocationCaddy {
	t.Helper()
	dir := t.TempDir()
	adminPort, port := revocationFreePort(t), revocationFreePort(t)
	caddyfile := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
	skip_install_trust
	grace_period 1ns
}

http://127.0.0.1:%d {
	token_auth {
		store postgres {
			dsn %q
			notify
		}
		cache {
			ttl 30s
			negative_ttl 5s
		}
	}
	respond "ok {http.auth.user.username}"
}
`, adminPort, port, dsn)
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
			t.Fatalf("caddy %s exited at start:\n%s", name, readLog())
		default:
		}
		if status, _, err := c.get(""); err == nil && status == http.StatusUnauthorized {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy %s does not answer on %s after 30s:\n%s", name, c.url, readLog())
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
	for _, c := range instances {
		for _, u := range users {
			c.expectOK(t, keys[u], u)
		}
	}

	// Without a notification the caches keep a deleted token: what
	// follows measures the pushes, not the lack of a cache.
	t.Run("the caches hold a token deleted without a notification", func(t *testing.T) {
		if _, err := django.Exec(ctx, `ALTER TABLE "authtoken_token" DISABLE TRIGGER "token_auth_notify"`); err != nil {
			t.Fatal(err)
		}
		_, err := django.Exec(ctx, `DELETE FROM "authtoken_token" WHERE "key" = $1`, keys["control"])
		if _, err2 := django.Exec(ctx, `ALTER TABLE "authtoken_token" ENABLE TRIGGER "token_auth_notify"`); err2 != nil {
			t.Fatal(err2)
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		for _, c := range instances {
			if status, body, err := c.get(keys["control"]); err != nil || status != http.StatusOK {
				t.Errorf("caddy %s: %d %q %v, want the cached 200", c.name, status, body, err)
			}
		}
	})

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
				t.Fatalf("revocation %d (%s of %s): %v", i, m.name, u, err)
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
		t.Errorf("p99 revocation latency %v, want ≤ 100ms", p99)
	}

	t.Run("the control token was flushed with the others", func(t *testing.T) {
		for _, c := range instances {
			if status, body, err := c.get(keys["control"]); err != nil || status != http.StatusUnauthorized {
				t.Errorf("caddy %s: %d %q %v, want 401", c.name, status, body, err)
			}
		}
	})
}
