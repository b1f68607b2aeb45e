package postgres

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
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

// privateCluster is a PostgreSQL cluster of the test's own
// (scripts/pg-cluster.sh), which it may stop and start: the shared cluster
// of TOKENAUTH_PG_DSN serves tests of other packages running at the same
// time.
type privateCluster struct {
	dir, data, bindir string
	dsn               string
}

// startPrivateCluster initialises and starts a private cluster; it is
// stopped and removed when the test ends. PostgreSQL must be installed
// (TOKENAUTH_PG_DSN being set says it is).
func startPrivateCluster(t *testing.T) *privateCluster {
	t.Helper()
	testDSN(t)
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "pg-cluster.sh"))
	if err != nil {
		t.Fatal(err)
	}
	// The postgres OS user must reach the directory: under /tmp, 0755.
	dir, err := os.MkdirTemp("/tmp", "tokenauth-pgprivate-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "stop", dir).CombinedOutput(); err != nil {
			t.Logf("stopping the private cluster: %v\n%s", err, out)
		}
		os.RemoveAll(dir)
	})
	cmd := exec.Command("bash", script, "start", dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg-cluster.sh start: %v\n%s", err, stderr.String())
	}
	c := &privateCluster{dir: dir}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		switch k {
		case "TOKENAUTH_PG_DSN":
			c.dsn = v
		case "TOKENAUTH_PG_DATA":
			c.data = v
		}
	}
	if c.dsn == "" || c.data == "" {
		t.Fatalf("pg-cluster.sh start printed %q, want two export lines", out)
	}
	// The newest installed PostgreSQL, as pg-cluster.sh chooses it.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			c.bindir = d
		}
	}
	if c.bindir == "" {
		p, err := exec.LookPath("pg_ctl")
		if err != nil {
			t.Fatal("no pg_ctl in /usr/lib/postgresql/*/bin or on PATH")
		}
		c.bindir = filepath.Dir(p)
	}
	return c
}

// pgCtl runs pg_ctl on the cluster, as the postgres OS user when the tests
// run as root (as scripts/pg-cluster.sh does).
func (c *privateCluster) pgCtl(t *testing.T, args ...string) {
	t.Helper()
	bin := filepath.Join(c.bindir, "pg_ctl")
	cmd := exec.Command(bin, args...)
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (c *privateCluster) stop(t *testing.T) { c.pgCtl(t, "-D", c.data, "stop", "-m", "fast") }

func (c *privateCluster) start(t *testing.T) {
	c.pgCtl(t, "-D", c.data, "-w", "-l", filepath.Join(c.dir, "postgres.log"), "start")
}

// The database goes away and comes back: lookups answer ErrUnavailable in
// time while it is down, Caddy can still start, and everything works again
// once it is back, without provisioning anew.
func TestLookupSurvivesARestartOfTheServer(t *testing.T) {
	cluster := startPrivateCluster(t)
	dsn := cluster.dsn
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

	cluster.stop(t)

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

	cluster.start(t)

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
