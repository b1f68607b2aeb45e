package postgres

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// A server that accepts connections and never answers: Provision must not
// hang on it, and each lookup must give up within query_timeout.
func TestLookupGivesUpWithinQueryTimeoutOnASilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var conns []net.Conn // held open, never answered
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()

	const timeout = 300 * time.Millisecond
	s := &Postgres{DSN: "postgres://django:pw@" + ln.Addr().String() + "/app?sslmode=disable", QueryTimeout: durationOf(timeout)}
	t.Cleanup(func() { _ = s.Cleanup() })
	start := time.Now()
	if err := s.provision(context.Background(), zap.NewNop()); err != nil {
		t.Fatalf("Provision with a silent server: %v", err)
	}
	if d := time.Since(start); d > timeout+time.Second {
		t.Errorf("Provision took %v with query_timeout %v", d, timeout)
	}
	for range 3 {
		start := time.Now()
		_, err := s.Lookup(context.Background(), strings.Repeat("a", 40))
		d := time.Since(start)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Lookup error = %v, want ErrUnavailable", err)
		}
		if d > timeout+time.Second {
			t.Errorf("Lookup took %v with query_timeout %v", d, timeout)
		}
	}
}

// pgCtl runs pg_ctl on the test cluster, as the postgres OS user when the
// tests run as root (as scripts/pg-cluster.sh does).
func pgCtl(t *testing.T, args ...string) {
	t.Helper()
	bin, _ := exec.LookPath("pg_ctl")
	if dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl"); len(dirs) > 0 {
		sort.Strings(dirs)
		bin = dirs[len(dirs)-1]
	}
	if bin == "" {
		t.Fatal("no pg_ctl in /usr/lib/postgresql/*/bin or on PATH")
	}
	cmd := exec.Command(bin, args...)
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// The database goes away and comes back: lookups answer ErrUnavailable in
// time while it is down, Caddy can still start, and everything works again
// once it is back, without provisioning anew.
func TestLookupSurvivesARestartOfTheServer(t *testing.T) {
	dsn := testDSN(t)
	data := os.Getenv("TOKENAUTH_PG_DATA")
	if data == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TOKENAUTH_PG_DATA is not set (eval \"$(scripts/pg-cluster.sh start <dir>)\")")
		}
		t.Skip("TOKENAUTH_PG_DATA is not set: no cluster of our own to stop and start")
	}
	start := func() { pgCtl(t, "-D", data, "-w", "-l", filepath.Join(filepath.Dir(data), "postgres.log"), "start") }
	stopped := false
	t.Cleanup(func() {
		if stopped {
			start()
		}
	})

	ctx := context.Background()
	const timeout = time.Second
	up, err := load(t, map[string]any{"dsn": dsn, "schema": freshSchema(t, dsn), "create": true, "query_timeout": "1s"})
	if err != nil {
		t.Fatal(err)
	}
	addUser(t, up, "john", true)
	key := createToken(t, up, "john")
	if _, err := up.Lookup(ctx, key); err != nil {
		t.Fatal(err)
	}

	pgCtl(t, "-D", data, "stop", "-m", "fast")
	stopped = true

	t.Run("lookup answers unavailable in time", func(t *testing.T) {
		for range 3 {
			begin := time.Now()
			_, err := up.Lookup(ctx, key)
			if d := time.Since(begin); d > timeout+time.Second {
				t.Errorf("Lookup took %v, query_timeout is %v", d, timeout)
			}
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("Lookup error = %v, want ErrUnavailable", err)
			}
		}
	})

	// Caddy starts while the database is down, with existing tables or
	// with tables still to create.
	existingSchema, err := load(t, map[string]any{"dsn": dsn, "schema": up.Schema, "query_timeout": "1s"})
	if err != nil {
		t.Fatalf("Provision while the server is down: %v", err)
	}
	newSchema, err := load(t, map[string]any{"dsn": dsn, "schema": freshSchema(t, dsn), "create": true, "query_timeout": "1s"})
	if err != nil {
		t.Fatalf("Provision with create while the server is down: %v", err)
	}
	if _, err := newSchema.Lookup(ctx, key); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Lookup on a store provisioned while down: error = %v, want ErrUnavailable", err)
	}

	start()
	stopped = false

	t.Run("lookups succeed again", func(t *testing.T) {
		for _, s := range []*Postgres{up, existingSchema} {
			id, err := s.Lookup(ctx, key)
			if err != nil || id.Username != "john" {
				t.Errorf("Lookup after the restart = %+v, %v", id, err)
			}
		}
	})
	t.Run("tables are created on first contact", func(t *testing.T) {
		if _, err := newSchema.Lookup(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Lookup in the new schema: error = %v, want ErrNotFound", err)
		}
		addUser(t, newSchema, "amy", true)
		k := createToken(t, newSchema, "amy")
		if id, err := newSchema.Lookup(ctx, k); err != nil || id.Username != "amy" {
			t.Errorf("Lookup = %+v, %v", id, err)
		}
	})
}

func durationOf(d time.Duration) caddy.Duration { return caddy.Duration(d) }
