//go:build unix

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// sqlExec runs statements on path through a handle of its own, closed
// before it returns.
func sqlExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// eventually polls check until it returns nil or within has passed, and
// returns its last error.
func eventually(within time.Duration, check func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lookupErr is what Lookup says about key, as an error: nil when found.
func lookupErr(s *SQLite, key string) error {
	id, err := s.Lookup(context.Background(), key)
	if err == nil {
		return fmt.Errorf("lookup found user %s", id.Username)
	}
	return err
}

// replacementCase is one kind of store whose file is replaced or removed.
type replacementCase struct {
	name    string
	create  bool // the embedded kind: made by token_auth, in WAL mode
	watched bool // a cache subscribes (without one, Lookup alone must notice)
}

var replacementCases = []replacementCase{
	{"created by token_auth, watched", true, true},
	{"created by token_auth, cache off", true, false},
	{"Django's file, watched", false, true},
	{"Django's file, cache off", false, false},
}

// replacementFixture is a serving store with alice's token looked up once,
// and its flush counter when watched.
type replacementFixture struct {
	s       *SQLite
	path    string
	key     string
	flushes atomic.Int64
}

func newReplacementFixture(t *testing.T, tc replacementCase) *replacementFixture {
	t.Helper()
	f := &replacementFixture{path: filepath.Join(t.TempDir(), "db.sqlite3")}
	if !tc.create {
		djangoFile(t, f.path)
	}
	f.s = provision(t, f.path, tc.create)
	ctx := context.Background()
	if err := f.s.AddUser(ctx, store.NewUser{Username: "alice", Password: "!", Active: true}); err != nil {
		t.Fatal(err)
	}
	key, err := f.s.TokenFor(ctx, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	f.key = key
	if id, err := f.s.Lookup(ctx, key); err != nil || id.Username != "alice" {
		t.Fatalf("lookup before the replacement: %+v, %v", id, err)
	}
	if tc.watched {
		stop, _ := f.s.Watch(func() { f.flushes.Add(1) }, nil)
		t.Cleanup(stop)
		// Let the poller see the writes above, so that a flush counted
		// from here on is for what the test does next.
		polls := &f.s.db.watchers.polls
		p := polls.Load()
		if err := eventually(2*time.Second, func() error {
			if polls.Load() < p+3 {
				return errors.New("the poller is not reading")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		f.flushes.Store(0)
	}
	return f
}

// A file replaced by rename (a restore, rsync, a deploy) is reopened within
// the poll interval: a token deleted in the new file stops working, with or
// without a watcher, and a watcher's flush is called.
func TestReplacedFileIsReopened(t *testing.T) {
	for _, tc := range replacementCases {
		t.Run(tc.name, func(t *testing.T) {
			f := newReplacementFixture(t, tc)
			cp := filepath.Join(filepath.Dir(f.path), "copy.sqlite3")
			sqlExec(t, f.path, "VACUUM INTO '"+cp+"'")
			sqlExec(t, cp, `DELETE FROM authtoken_token`)
			if err := os.Rename(cp, f.path); err != nil {
				t.Fatal(err)
			}
			if tc.watched {
				// No lookup: with a cache, hits never reach the store.
				if err := eventually(time.Second, func() error {
					if f.flushes.Load() == 0 {
						return errors.New("no flush 1s after the file was replaced")
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			if err := eventually(time.Second, func() error {
				if err := lookupErr(f.s, f.key); !errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("the deleted token 1s after the file was replaced: %v, want ErrNotFound", err)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			// The new file is served, not only the old one hidden.
			if _, err := f.s.TokenFor(context.Background(), "alice", false); err != nil {
				t.Fatalf("writing to the new file: %v", err)
			}
		})
	}
}

// A removed file makes lookups fail with ErrUnavailable (503) wrapping the
// cause, never answer from the deleted file, and is not re-created, even
// for the embedded store.
func TestRemovedFileIsUnavailable(t *testing.T) {
	for _, tc := range replacementCases {
		t.Run(tc.name, func(t *testing.T) {
			f := newReplacementFixture(t, tc)
			if err := os.Remove(f.path); err != nil {
				t.Fatal(err)
			}
			if tc.watched {
				if err := eventually(time.Second, func() error {
					if f.flushes.Load() == 0 {
						return errors.New("no flush 1s after the file was removed")
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			var last error
			if err := eventually(time.Second, func() error {
				last = lookupErr(f.s, f.key)
				if !errors.Is(last, store.ErrUnavailable) {
					return fmt.Errorf("lookup 1s after the file was removed: %v, want ErrUnavailable", last)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !errors.Is(last, fs.ErrNotExist) {
				t.Errorf("the error %q does not wrap its cause (fs.ErrNotExist)", last)
			}
			if _, err := os.Stat(f.path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the removed file was re-created (stat: %v)", err)
			}
			// It comes back once a file is there again.
			next := filepath.Join(filepath.Dir(f.path), "next.sqlite3")
			djangoFile(t, next)
			if err := os.Rename(next, f.path); err != nil {
				t.Fatal(err)
			}
			if err := eventually(time.Second, func() error {
				if err := lookupErr(f.s, f.key); !errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("lookup 1s after a new file was put in place: %v, want ErrNotFound", err)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Between a replacement and the check that notices it, the old pool opens
// no connection on the new file: SQLite would pair that connection with
// the old file's -wal and -shm, which are named after the path.
func TestPoolOpensNoConnectionOnAnotherFile(t *testing.T) {
	f := newReplacementFixture(t, replacementCase{create: true})
	h := f.s.db.cur.Load()
	cp := filepath.Join(filepath.Dir(f.path), "copy.sqlite3")
	sqlExec(t, f.path, "VACUUM INTO '"+cp+"'")
	if err := os.Rename(cp, f.path); err != nil {
		t.Fatal(err)
	}
	// No query runs through the store, so nothing checks the file: take
	// connections from the old pool until it has to open one.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var conns []*sql.Conn
	var err error
	for err == nil {
		var c *sql.Conn
		if c, err = h.db.Conn(ctx); err == nil {
			conns = append(conns, c)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	if !strings.Contains(err.Error(), "not the one this pool was opened on") {
		t.Fatalf("a new connection of the old pool after the replacement: %v", err)
	}
	// The store then serves the new file.
	if id, err := f.s.Lookup(context.Background(), f.key); err != nil || id.Username != "alice" {
		t.Fatalf("lookup in the new file: %+v, %v", id, err)
	}
	if f.s.db.cur.Load() == h {
		t.Fatal("the pool was not replaced")
	}
}

// Lookups running all along while the file is replaced again and again
// each answer from one file or the other, or are unavailable for a moment,
// and end up answering from the file in place; nothing hangs.
func TestLookupsRunningThroughReplacements(t *testing.T) {
	f := newReplacementFixture(t, replacementCase{create: true, watched: true})
	dir := filepath.Dir(f.path)
	with, without := filepath.Join(dir, "with.sqlite3"), filepath.Join(dir, "without.sqlite3")
	sqlExec(t, f.path, "VACUUM INTO '"+with+"'")
	sqlExec(t, f.path, "VACUUM INTO '"+without+"'")
	sqlExec(t, without, `DELETE FROM authtoken_token`)

	quit := make(chan struct{})
	stop := sync.OnceFunc(func() { close(quit) })
	t.Cleanup(stop) // before the store's own cleanup, on failure too
	unexpected := make(chan error, 8)
	var lookups atomic.Int64
	for range 8 {
		go func() {
			for {
				select {
				case <-quit:
					unexpected <- nil
					return
				default:
				}
				_, err := f.s.Lookup(context.Background(), f.key)
				if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrUnavailable) {
					unexpected <- err
					return
				}
				lookups.Add(1)
			}
		}()
	}
	for i := range 10 {
		src, want := with, error(nil)
		if i%2 == 0 {
			src, want = without, store.ErrNotFound
		}
		tmp := filepath.Join(dir, "next.sqlite3")
		sqlExec(t, src, "VACUUM INTO '"+tmp+"'")
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
		if err := eventually(2*time.Second, func() error {
			_, err := f.s.Lookup(context.Background(), f.key)
			if !errors.Is(err, want) {
				return fmt.Errorf("replacement %d: lookup %v, want %v", i, err, want)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	for range 8 {
		if err := <-unexpected; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d lookups through 10 replacements", lookups.Load())
}
