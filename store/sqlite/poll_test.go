package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// promisedInterval is what the README and the Path and Watch docs promise:
// a commit is noticed within 25 ms.
const promisedInterval = 25 * time.Millisecond

// With a live subscriber the file is read once per promised interval. The
// count of reads over a window is compared with the count the interval
// gives, with slack for a loaded machine (60%, which an interval of 42 ms
// or more can never reach); a window that falls short is tried again, so
// only an interval that is too long fails every time.
func TestWatchPollsEvery25msWhileLive(t *testing.T) {
	s, _ := openStore(t)
	stop, _ := s.Watch(func() {}, nil) // nil live: always live
	defer stop()
	polls := &s.db.watchers.polls
	time.Sleep(2 * promisedInterval) // the poller is under way

	const window = 500 * time.Millisecond
	var best float64
	for attempt := 0; attempt < 5; attempt++ {
		before, start := polls.Load(), time.Now()
		time.Sleep(window)
		n, elapsed := polls.Load()-before, time.Since(start)
		ratio := float64(n) / (float64(elapsed) / float64(promisedInterval))
		t.Logf("attempt %d: %d reads in %v, %.0f%% of one per %v", attempt, n, elapsed, 100*ratio, promisedInterval)
		if ratio >= 0.6 {
			return
		}
		best = max(best, ratio)
	}
	t.Fatalf("at best %.0f%% of the reads one per %v gives (pollInterval is %v): commits are not noticed within %v",
		100*best, promisedInterval, pollInterval, promisedInterval)
}

// A read of PRAGMA data_version that fails (here: another connection holds
// an exclusive lock on a rollback-journal file past the busy timeout)
// flushes the subscribers at once, since a commit could have been missed;
// it does not wait for the lock to go.
func TestWatchFlushesWhenAVersionReadFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.sqlite3")
	setup, err := sql.Open("sqlite", path) // journal_mode=delete: readers wait for an exclusive lock
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	for _, ddl := range Schema {
		if _, err := setup.Exec(ddl); err != nil {
			t.Fatal(err)
		}
	}
	var mode string
	if err := setup.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "delete" {
		t.Fatalf("journal_mode = %q, %v; want delete", mode, err)
	}

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	raw, _ := json.Marshal(map[string]any{"path": path, "query_timeout": "50ms"})
	s := new(SQLite)
	if err := json.Unmarshal(raw, s); err != nil {
		t.Fatal(err)
	}
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()

	var flushes atomic.Int64
	stop, _ := s.Watch(func() { flushes.Add(1) }, nil)
	defer stop()
	polls := &s.db.watchers.polls
	waitPolls := func(n int64, what string) {
		t.Helper()
		target := polls.Load() + n
		for deadline := time.Now().Add(5 * time.Second); polls.Load() < target; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: only %d of %d reads in 5s", what, polls.Load()-target+n, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitPolls(3, "before the lock")
	if n := flushes.Load(); n != 0 {
		t.Fatalf("%d flushes before anything happened", n)
	}

	locker, err := setup.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	if _, err := locker.ExecContext(context.Background(), `BEGIN EXCLUSIVE`); err != nil {
		t.Fatal(err)
	}
	locked := true
	unlock := func() {
		if locked {
			locked = false
			if _, err := locker.ExecContext(context.Background(), `ROLLBACK`); err != nil {
				t.Error(err)
			}
		}
	}
	defer unlock()

	// A lookup fails on the lock too: the read is refused, not served.
	if _, err := s.Lookup(context.Background(), "0123456789abcdef0123456789abcdef01234567"); err == nil {
		t.Fatal("a lookup succeeded under another connection's exclusive lock")
	}
	// The read counter moves before each read: two more mean at least one
	// read began and ended under the lock.
	waitPolls(2, "under the lock")
	for deadline := time.Now().Add(2 * time.Second); flushes.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no flush after %d failed reads of PRAGMA data_version", polls.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Once the lock is gone the reads succeed again: one more flush for
	// the first read after the failures, then quiet.
	unlock()
	waitPolls(3, "after the lock")
	settled := flushes.Load()
	waitPolls(4, "after the lock")
	if n := flushes.Load() - settled; n != 0 {
		t.Fatalf("%d flushes with no change once reads succeed again", n)
	}
}
