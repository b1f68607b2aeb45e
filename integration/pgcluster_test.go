package integration

// PostgreSQL for the integration tests: the shared cluster of the test run
// (TOKENAUTH_PG_DSN, started by scripts/test.sh), a database of each test's
// own in it, and private clusters for the tests that stop the server.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// pgDSN is the shared cluster's DSN from TOKENAUTH_PG_DSN. Without it the
// test is skipped, except under CI=true, where that is a failure.
func pgDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("TOKENAUTH_PG_DSN")
	var err error
	if dsn == "" {
		err = errors.New(`TOKENAUTH_PG_DSN is not set (eval "$(bash scripts/pg-cluster.sh start <dir>)")`)
	}
	requireOrSkip(t, "PostgreSQL", err)
	return dsn
}

// pgConnect is a direct connection to dsn, closed when the test ends.
func pgConnect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// pgWithDatabase is dsn (a URL) naming database db instead.
func pgWithDatabase(t *testing.T, dsn, db string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("TOKENAUTH_PG_DSN must be a postgres:// URL: %v", err)
	}
	u.Path = "/" + db
	return u.String()
}

// pgFreshDatabase creates an empty database of the test's own on the
// cluster of dsn and returns its name and DSN; it is dropped (its
// connections closed by force) when the test ends.
func pgFreshDatabase(t *testing.T, dsn string) (name, dbDSN string) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name = "it_" + hex.EncodeToString(b[:])
	conn := pgConnect(t, dsn)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// A connection of its own: the server may have been restarted.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Logf("dropping database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			t.Logf("dropping database %s: %v", name, err)
		}
	})
	return name, pgWithDatabase(t, dsn, name)
}

// pgSeed creates Django's tables in the database of dsn (the store's create
// option) and the given active users with tokens, and returns their keys.
func pgSeed(t *testing.T, dsn string, users ...string) map[string]string {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel() // releases the store's pool
	mod, err := ctx.LoadModuleByID(store.Namespace+".postgres", []byte(fmt.Sprintf(`{"dsn":%q,"create":true}`, dsn)))
	if err != nil {
		t.Fatalf("creating the tables: %v", err)
	}
	s := mod.(store.Admin)
	keys := make(map[string]string)
	for _, u := range users {
		if err := s.AddUser(ctx, store.NewUser{Username: u, Password: "!unusable", Active: true}); err != nil {
			t.Fatalf("adding %s: %v", u, err)
		}
		key, err := s.TokenFor(ctx, u, false)
		if err != nil {
			t.Fatalf("token for %s: %v", u, err)
		}
		keys[u] = key
	}
	return keys
}

// pgCluster is a private PostgreSQL cluster (scripts/pg-cluster.sh) that a
// test may stop, start and freeze without disturbing the shared one.
type pgCluster struct {
	dir, data, bindir string
	dsn               string // its tokenauth database
	frozen            []int  // pids stopped by freeze
}

// pgStartPrivateCluster initialises and starts a cluster of the test's own;
// it is stopped and removed when the test ends. It needs PostgreSQL
// installed (the same condition as TOKENAUTH_PG_DSN being set).
func pgStartPrivateCluster(t *testing.T) *pgCluster {
	t.Helper()
	pgDSN(t) // no shared cluster: no PostgreSQL to run a private one either
	script, err := filepath.Abs(filepath.Join("..", "scripts", "pg-cluster.sh"))
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
	c := &pgCluster{dir: dir}
	t.Cleanup(func() {
		c.thaw()
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
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
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
	c.bindir = pgBindir(t)
	return c
}

// pgBindir is the newest /usr/lib/postgresql/*/bin, else pg_ctl's on PATH,
// as pg-cluster.sh chooses it.
func pgBindir(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i]
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p)
	}
	t.Fatal("no pg_ctl in /usr/lib/postgresql/*/bin or on PATH")
	return ""
}

// pgCtl runs pg_ctl, as the postgres OS user when the tests run as root.
func (c *pgCluster) pgCtl(t *testing.T, args ...string) {
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

// stop shuts the server down (fast: open sessions are terminated).
func (c *pgCluster) stop(t *testing.T) { c.pgCtl(t, "-D", c.data, "stop", "-m", "fast") }

// start starts the server again, on the same port, and waits for it.
func (c *pgCluster) start(t *testing.T) {
	c.pgCtl(t, "-D", c.data, "-w", "-l", filepath.Join(c.dir, "postgres.log"), "start")
}

// freeze stops (SIGSTOP) the postmaster and its backends: the server
// accepts TCP connections into the kernel's backlog and answers nothing,
// the worst kind of outage for a client. thaw undoes it.
func (c *pgCluster) freeze(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		t.Fatalf("reading postmaster.pid: %v", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	pids := append(pgChildren(pm), pm)
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err == nil {
			c.frozen = append(c.frozen, pid)
		}
	}
}

// thaw resumes what freeze stopped.
func (c *pgCluster) thaw() {
	for _, pid := range c.frozen {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	c.frozen = nil
}

// pgChildren lists the processes whose parent is pid.
func pgChildren(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// pgBackends counts the server connections to database db (client
// backends in pg_stat_activity), asked over conn.
func pgBackends(ctx context.Context, conn *pgx.Conn, db string) (int, error) {
	var n int
	err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'`, db).Scan(&n)
	return n, err
}
