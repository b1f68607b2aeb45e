package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// openStore provisions a store on a fresh file, as Caddy would.
func openStore(t *testing.T) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db.sqlite3")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	raw, _ := json.Marshal(map[string]any{"path": path, "create": true})
	s := new(SQLite)
	if err := json.Unmarshal(raw, s); err != nil {
		t.Fatal(err)
	}
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Cleanup() })
	return s, path
}

// A write by another process (here: another database handle, as Django's
// would be) reaches the watcher within 100 ms, at the 99th percentile.
func TestWatchNoticesOtherWritersWithin100ms(t *testing.T) {
	s, path := openStore(t)
	if err := s.AddUser(context.Background(), store.NewUser{Username: "alice", Password: "!", Active: true}); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan struct{}, 16)
	stop, pushed := s.Watch(func() {
		select {
		case flushed <- struct{}{}:
		default:
		}
	}, nil)
	defer stop()
	if !pushed {
		t.Fatal("the sqlite store does not push changes")
	}
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	time.Sleep(3 * pollInterval) // the poller has read a first version

	var latencies []time.Duration
	for i := 0; i < 50; i++ {
		for len(flushed) > 0 {
			<-flushed
		}
		start := time.Now()
		if _, err := other.Exec(`UPDATE auth_user SET is_active = ? WHERE username = 'alice'`, i%2); err != nil {
			t.Fatal(err)
		}
		select {
		case <-flushed:
			latencies = append(latencies, time.Since(start))
		case <-time.After(2 * time.Second):
			t.Fatalf("change %d not noticed", i)
		}
	}
	slices.Sort(latencies)
	p99 := latencies[len(latencies)*99/100]
	t.Logf("sqlite change → flush: median %v, p99 %v", latencies[len(latencies)/2], p99)
	if p99 > 100*time.Millisecond {
		t.Fatalf("p99 %v over 100ms", p99)
	}
}

// While no subscriber is live the file is not read; a change made in that
// pause is still noticed once one is live again, and resuming without a
// change flushes nothing.
func TestWatchPausesWhileNotLive(t *testing.T) {
	s, path := openStore(t)
	var live atomic.Bool
	live.Store(true)
	flushed := make(chan struct{}, 100)
	stop, _ := s.Watch(func() { flushed <- struct{}{} }, live.Load)
	defer stop()
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	drain := func() int {
		n := 0
		for len(flushed) > 0 {
			<-flushed
			n++
		}
		return n
	}
	polls := &s.db.watchers.polls

	for _, change := range []bool{false, true} {
		live.Store(false)
		time.Sleep(2 * pollInterval)
		drain()
		before := polls.Load()
		time.Sleep(8 * pollInterval)
		if n := polls.Load() - before; n != 0 {
			t.Fatalf("%d reads while no subscriber is live", n)
		}
		if change {
			if _, err := other.Exec(`INSERT INTO auth_user (password, is_superuser, username, last_name, email, is_staff, is_active, date_joined, first_name) VALUES ('!', 0, 'y', '', '', 0, 1, '2026-01-01 00:00:00', '')`); err != nil {
				t.Fatal(err)
			}
			time.Sleep(4 * pollInterval)
			if n := drain(); n != 0 {
				t.Fatalf("%d flushes while paused", n)
			}
		}
		start := time.Now()
		live.Store(true)
		if change {
			select {
			case <-flushed:
				if el := time.Since(start); el > 100*time.Millisecond {
					t.Errorf("the change made while paused was noticed %v after resuming", el)
				}
			case <-time.After(time.Second):
				t.Fatal("a change made while paused was missed")
			}
		} else {
			time.Sleep(6 * pollInterval)
			if polls.Load() == before {
				t.Fatal("no reads after resuming")
			}
			if n := drain(); n != 0 {
				t.Fatalf("resuming without a change flushed %d times", n)
			}
		}
	}
}

// Starting a watch reads the version at once: the poller's first reads
// flush nothing, and a commit made just before the watch began is not
// taken for a change later (a cache started then has nothing to drop).
func TestWatchStartsFromTheCurrentVersion(t *testing.T) {
	s, path := openStore(t)
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(`INSERT INTO auth_user (password, is_superuser, username, last_name, email, is_staff, is_active, date_joined, first_name) VALUES ('!', 0, 'z', '', '', 0, 1, '2026-01-01 00:00:00', '')`); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan struct{}, 100)
	stop, _ := s.Watch(func() { flushed <- struct{}{} }, nil)
	defer stop()
	polls := &s.db.watchers.polls
	if n := polls.Load(); n != 1 {
		t.Fatalf("%d reads when Watch returned, want 1", n)
	}
	for deadline := time.Now().Add(5 * time.Second); polls.Load() < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d reads in 5s", polls.Load())
		}
		time.Sleep(pollInterval)
	}
	if n := len(flushed); n != 0 {
		t.Fatalf("%d flushes without a change since the watch began", n)
	}
	if _, err := other.Exec(`UPDATE auth_user SET is_active = 0`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-flushed:
	case <-time.After(2 * time.Second):
		t.Fatal("a change after the watch began was missed")
	}
}

func TestWatchStopsCalling(t *testing.T) {
	s, path := openStore(t)
	calls := make(chan struct{}, 100)
	stop, _ := s.Watch(func() { calls <- struct{}{} }, nil)
	time.Sleep(3 * pollInterval)
	stop()
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for len(calls) > 0 {
		<-calls
	}
	if _, err := other.Exec(`INSERT INTO auth_user (password, is_superuser, username, last_name, email, is_staff, is_active, date_joined, first_name) VALUES ('!', 0, 'x', '', '', 0, 1, '2026-01-01 00:00:00', '')`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * pollInterval)
	if len(calls) != 0 {
		t.Fatal("flush called after stop")
	}
}
