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
	return provision(t, path, true), path
}

// provision provisions a store module on path, as Caddy would.
func provision(t *testing.T, path string, create bool) *SQLite {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	raw, _ := json.Marshal(map[string]any{"path": path, "create": create})
	s := new(SQLite)
	if err := json.Unmarshal(raw, s); err != nil {
		t.Fatal(err)
	}
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Cleanup() })
	return s
}

// awaitWatch waits for cond, checked every millisecond, and fails the test
// saying what it waited for if cond does not hold within 5 s. It is how
// these tests wait for the poller: for what it has done (the polls
// counter, a flush, a tick that found nobody live), never for a guess at
// how long that takes.
func awaitWatch(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// atLeast is a condition for awaitWatch: n has reached want.
func atLeast(n *atomic.Int64, want int64) func() bool {
	return func() bool { return n.Load() >= want }
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
	polls := &s.db.watchers.polls
	// The poller has read a first version of its own (Watch read one
	// before it returned; a count is added as a read starts).
	awaitWatch(t, "the poller's first read", atLeast(polls, polls.Load()+2))

	var latencies []time.Duration
	for i := 0; i < 50; i++ {
		for len(flushed) > 0 {
			<-flushed
		}
		if _, err := other.Exec(`UPDATE auth_user SET is_active = ? WHERE username = 'alice'`, i%2); err != nil {
			t.Fatal(err)
		}
		// From the commit: the write itself (an fsync) is the disk's time,
		// not the watcher's.
		start := time.Now()
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
	// ticks counts the times the poller asks whether anyone is live: once
	// a tick, before its read. A count added after live changed is of a
	// tick that saw the change, and that began once the tick before it,
	// read and flush included, was over.
	var ticks atomic.Int64
	isLive := func() bool {
		ticks.Add(1)
		return live.Load()
	}
	flushed := make(chan struct{}, 100)
	stop, _ := s.Watch(func() { flushed <- struct{}{} }, isLive)
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
		// Once a tick has found nobody live, a read begun before the
		// pause is over and its flush is in the channel.
		awaitWatch(t, "a tick of the poller after the pause", atLeast(&ticks, ticks.Load()+1))
		drain()
		before := polls.Load()
		awaitWatch(t, "8 ticks of the poller while paused", atLeast(&ticks, ticks.Load()+8))
		if n := polls.Load() - before; n != 0 {
			t.Fatalf("%d reads while no subscriber is live", n)
		}
		if change {
			if _, err := other.Exec(`INSERT INTO auth_user (password, is_superuser, username, last_name, email, is_staff, is_active, date_joined, first_name) VALUES ('!', 0, 'y', '', '', 0, 1, '2026-01-01 00:00:00', '')`); err != nil {
				t.Fatal(err)
			}
			awaitWatch(t, "4 ticks of the poller after the change", atLeast(&ticks, ticks.Load()+4))
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
			// Two reads after resuming are over (and the flush either
			// would make in) once a third has begun.
			awaitWatch(t, "reads after resuming", atLeast(polls, before+3))
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
	awaitWatch(t, "4 reads", atLeast(polls, 4))
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
	polls := &s.db.watchers.polls
	awaitWatch(t, "the poller under way", atLeast(polls, polls.Load()+3))
	stop()
	if s.db.watchers.Running() {
		t.Fatal("the poller runs on with no subscriber")
	}
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for len(calls) > 0 {
		<-calls
	}
	// A second subscriber, from before the change, says when the poller
	// has seen it: its flush and any other of the same change are made
	// under the lock stopping it takes.
	seen := make(chan struct{}, 100)
	stop2, _ := s.Watch(func() { seen <- struct{}{} }, nil)
	defer stop2()
	if _, err := other.Exec(`INSERT INTO auth_user (password, is_superuser, username, last_name, email, is_staff, is_active, date_joined, first_name) VALUES ('!', 0, 'x', '', '', 0, 1, '2026-01-01 00:00:00', '')`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-seen:
	case <-time.After(2 * time.Second):
		t.Fatal("the change was not noticed")
	}
	stop2()
	if len(calls) != 0 {
		t.Fatal("flush called after stop")
	}
}
