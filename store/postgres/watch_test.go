package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// flushes records the calls of a flush function without ever blocking it.
// Made by listenerFlushes, it also notes how many LISTENs the listener had
// done at each call, for afterListen.
type flushes struct {
	n  atomic.Int64
	ch chan time.Time

	l      *listener // nil: LISTENs are not noted
	mu     sync.Mutex
	seen   int64                   // the most LISTENs a call has seen
	signal map[int64]chan struct{} // closed once a call has seen that many
}

func newFlushes() *flushes { return &flushes{ch: make(chan time.Time, 1024)} }

// listenerFlushes is newFlushes for a flush registered with s's listener.
func listenerFlushes(s *Postgres) *flushes {
	f := newFlushes()
	f.l = s.shared.listener
	f.signal = make(map[int64]chan struct{})
	return f
}

func (f *flushes) flush() {
	f.n.Add(1)
	select {
	case f.ch <- time.Now():
	default:
	}
	if f.l == nil {
		return
	}
	// After the send: whoever afterListen wakes can drain this call.
	listens := f.l.listens.Load()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = max(f.seen, listens)
	for n, ch := range f.signal {
		if n <= f.seen {
			close(ch)
			delete(f.signal, n)
		}
	}
}

// afterListen is closed by the first call that follows the listener's
// n-th LISTEN: the flush a session sends once LISTEN has taken effect.
func (f *flushes) afterListen(n int64) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{})
	if f.seen >= n {
		close(ch)
		return ch
	}
	if old, ok := f.signal[n]; ok {
		return old
	}
	f.signal[n] = ch
	return ch
}

// watchListening watches s with f (from listenerFlushes) and returns once
// the listener has LISTENed and flushed for it, with that flush drained:
// from then on every flush is a notification's (or a lost connection's).
func watchListening(t *testing.T, s *Postgres, f *flushes) (stop func(), pushed bool) {
	t.Helper()
	stop, pushed = s.Watch(f.flush, nil)
	select {
	case <-f.afterListen(1):
	case <-time.After(20 * time.Second):
		stop()
		t.Fatalf("no flush after LISTEN within 20s (%d LISTENs)", s.shared.listener.listens.Load())
	}
	f.drain()
	return stop, pushed
}

// drain forgets the flushes so far.
func (f *flushes) drain() {
	for {
		select {
		case <-f.ch:
		default:
			return
		}
	}
}

// wait returns the time of the next flush, or false after d.
func (f *flushes) wait(d time.Duration) (time.Time, bool) {
	select {
	case at := <-f.ch:
		return at, true
	case <-time.After(d):
		return time.Time{}, false
	}
}

// waitListening waits until s's listener has LISTENed n times in all.
func waitListening(t *testing.T, s *Postgres, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.shared.listener.listens.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the listener LISTENed %d times, want %d", s.shared.listener.listens.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ourTriggers lists "table:trigger" for token_auth's triggers in the
// database of conn, and the schemas holding the trigger function.
func ourTriggers(t *testing.T, conn *pgx.Conn) (triggers, functionSchemas []string) {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT c.relnamespace::regnamespace::text || '.' || c.relname || ':' || t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname IN ('token_auth_notify', 'token_auth_notify_update', 'token_auth_notify_flags') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	triggers, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(triggers) // bytewise, whatever the database's collation
	rows, err = conn.Query(ctx, `SELECT pronamespace::regnamespace::text FROM pg_proc WHERE proname = 'token_auth_notify' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	functionSchemas, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return triggers, functionSchemas
}

func TestNotifyInstallsTriggersOnlyWhenAskedAndIdempotently(t *testing.T) {
	for _, schema := range []string{"", "tokens"} {
		name := "in public"
		if schema != "" {
			name = "in schema " + schema
		}
		t.Run(name, func(t *testing.T) {
			dsn := freshDatabase(t, testDSN(t))
			conn := admin(t, dsn)
			where := "public"
			if schema != "" {
				where = schema
			}
			cfg := func(opts ...string) map[string]any {
				m := map[string]any{"dsn": dsn}
				if schema != "" {
					m["schema"] = schema
				}
				for _, o := range opts {
					m[o] = true
				}
				return m
			}
			watch := func(t *testing.T, s *Postgres) bool {
				stop, pushed := s.Watch(func() {}, nil)
				stop()
				return pushed
			}

			if _, err := load(t, cfg("notify")); err == nil || !strings.Contains(err.Error(), "no table") {
				t.Fatalf("notify without the tables: error = %v, want no table", err)
			}
			plain, err := load(t, cfg("create"))
			if err != nil {
				t.Fatal(err)
			}
			if trig, fns := ourTriggers(t, conn); len(trig) != 0 || len(fns) != 0 {
				t.Fatalf("without notify: triggers %v, functions in %v; want none", trig, fns)
			}
			if watch(t, plain) {
				t.Error("without triggers Watch says changes are pushed")
			}

			want := withPermissionTriggers(where, where+".auth_user:token_auth_notify", where+".authtoken_token:token_auth_notify")
			for i := range 2 {
				s, err := load(t, cfg("notify"))
				if err != nil {
					t.Fatalf("provision %d with notify: %v", i+1, err)
				}
				trig, fns := ourTriggers(t, conn)
				if !slices.Equal(trig, want) || !slices.Equal(fns, []string{where}) {
					t.Errorf("after provision %d with notify: triggers %v, function in %v; want %v, in %s", i+1, trig, fns, want, where)
				}
				if !watch(t, s) {
					t.Errorf("provision %d with notify: Watch says changes are not pushed", i+1)
				}
			}
			detected, err := load(t, cfg())
			if err != nil {
				t.Fatal(err)
			}
			if !watch(t, detected) {
				t.Error("triggers present, no notify option: Watch says changes are not pushed")
			}

			// A disabled trigger does not count.
			if _, err := conn.Exec(context.Background(), `ALTER TABLE `+qualify(schema, "auth_user")+` DISABLE TRIGGER token_auth_notify`); err != nil {
				t.Fatal(err)
			}
			disabled, err := load(t, cfg())
			if err != nil {
				t.Fatal(err)
			}
			if watch(t, disabled) {
				t.Error("a trigger disabled: Watch says changes are pushed")
			}
		})
	}
}

// djangoChange is a change made as Django makes it, over a connection of
// its own, to the tables of a user that has a token.
type djangoChange struct {
	name string
	sql  []string // in one transaction; $1 is the user's id
}

var djangoChanges = []djangoChange{
	{"token delete", []string{`DELETE FROM "authtoken_token" WHERE "user_id" = $1`}},
	{"token reset", []string{
		`DELETE FROM "authtoken_token" WHERE "user_id" = $1`,
		`INSERT INTO "authtoken_token" ("key", "created", "user_id") VALUES (md5(random()::text) || substr(md5(random()::text), 1, 8), now(), $1)`,
	}},
	{"user deactivation", []string{`UPDATE "auth_user" SET "is_active" = false WHERE "id" = $1`}},
	{"user delete", []string{
		`DELETE FROM "authtoken_token" WHERE "user_id" IN ($1)`,
		`DELETE FROM "auth_user" WHERE "id" IN ($1)`,
	}},
}

func (c djangoChange) apply(ctx context.Context, conn *pgx.Conn, uid int64) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, q := range c.sql {
			if _, err := tx.Exec(ctx, q, uid); err != nil {
				return err
			}
		}
		return nil
	})
}

// seedUsers adds n active users with tokens and returns their ids.
func seedUsers(t *testing.T, s *Postgres, conn *pgx.Conn, n int) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range n {
		name := "user" + itoa(i)
		addUser(t, s, name, true)
		createToken(t, s, name)
		if err := conn.QueryRow(context.Background(), `SELECT "id" FROM "auth_user" WHERE "username" = $1`, name).Scan(&ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// Changes made by Django over a plain connection reach Watch's flush
// within 100ms (p99 over 50), through the triggers; changes that cannot
// revoke anything (a login's last_login, a new user) send nothing.
func TestDjangoChangesFlushWithin100ms(t *testing.T) {
	dsn := freshDatabase(t, testDSN(t))
	s, err := load(t, map[string]any{"dsn": dsn, "create": true, "notify": true})
	if err != nil {
		t.Fatal(err)
	}
	django := admin(t, dsn)
	ctx := context.Background()
	const changes = 50
	ids := seedUsers(t, s, django, changes)

	f := listenerFlushes(s)
	stop, pushed := watchListening(t, s, f)
	defer stop()
	if !pushed {
		t.Fatal("Watch with notify says changes are not pushed")
	}

	t.Run("changes that revoke nothing send nothing", func(t *testing.T) {
		for _, q := range []string{
			`UPDATE "auth_user" SET "last_login" = now() WHERE "id" = ` + itoa(int(ids[0])),
			`INSERT INTO "auth_user" ("password", "is_superuser", "username", "first_name", "last_name", "email", "is_staff", "is_active", "date_joined") VALUES ('!', false, 'newcomer', '', '', '', false, true, now())`,
		} {
			f.drain()
			if _, err := django.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
			if _, ok := f.wait(200 * time.Millisecond); ok {
				t.Errorf("%s: flushed", q)
			}
		}
	})

	var latencies []time.Duration
	byKind := make(map[string][]time.Duration)
	for i := range changes {
		c := djangoChanges[i%len(djangoChanges)]
		f.drain()
		begin := time.Now()
		if err := c.apply(ctx, django, ids[i]); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		at, ok := f.wait(2 * time.Second)
		if !ok {
			t.Fatalf("change %d (%s): no flush within 2s", i, c.name)
		}
		d := at.Sub(begin)
		latencies = append(latencies, d)
		byKind[c.name] = append(byKind[c.name], d)
	}
	med, p99 := percentiles(latencies)
	t.Logf("change → flush over %d changes: median %v, p99 %v", changes, med, p99)
	for _, c := range djangoChanges {
		m, p := percentiles(byKind[c.name])
		t.Logf("  %-17s median %v, max %v", c.name, m, p)
	}
	if p99 > 100*time.Millisecond {
		t.Errorf("p99 change → flush latency %v, want ≤ 100ms", p99)
	}
}

// percentiles returns the median and the 99th percentile (nearest rank).
func percentiles(ds []time.Duration) (median, p99 time.Duration) {
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

// Without triggers, the store's own writes (logout, `caddy token`) still
// reach every watcher; Django's do not, and Watch says so.
func TestStoreWritesNotifyWithoutTriggers(t *testing.T) {
	dsn := freshDatabase(t, testDSN(t))
	writer, err := load(t, map[string]any{"dsn": dsn, "create": true})
	if err != nil {
		t.Fatal(err)
	}
	django := admin(t, dsn)
	ids := seedUsers(t, writer, django, 3)
	// Another module on the same database, as another Caddy's would be.
	watcher, err := load(t, map[string]any{"dsn": dsn, "query_timeout": "3s"})
	if err != nil {
		t.Fatal(err)
	}
	f := listenerFlushes(watcher)
	stop, pushed := watchListening(t, watcher, f)
	defer stop()
	if pushed {
		t.Error("without triggers Watch says changes are pushed")
	}
	ctx := context.Background()
	key, _ := writer.TokenFor(ctx, "user0", false)

	for _, w := range []struct {
		name   string
		change func() error
	}{
		{"DeleteTokenByKey (logout)", func() error { _, err := writer.DeleteTokenByKey(ctx, key); return err }},
		{"TokenFor with reset", func() error { _, err := writer.TokenFor(ctx, "user1", true); return err }},
		{"TokenFor of a user without a token", func() error { _, err := writer.TokenFor(ctx, "user0", false); return err }},
		{"DeleteUserToken", func() error { _, err := writer.DeleteUserToken(ctx, "user2"); return err }},
	} {
		f.drain()
		if err := w.change(); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		if _, ok := f.wait(time.Second); !ok {
			t.Errorf("%s: no flush", w.name)
		}
	}
	f.drain()
	if err := djangoChanges[0].apply(ctx, django, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.wait(200 * time.Millisecond); ok {
		t.Error("a change by Django flushed without triggers")
	}
	f.drain()
	if _, err := writer.DeleteTokenByKey(ctx, strings.Repeat("0", 40)); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.wait(200 * time.Millisecond); ok {
		t.Error("DeleteTokenByKey of an unknown key flushed")
	}
}

// The server restarts under a watching store: flush is called when the
// connection goes, the listener comes back by itself, flushes once LISTEN
// works again, and notifications arrive as before. On a private cluster:
// the shared one serves other packages' tests.
func TestListenerReconnectsAfterServerRestart(t *testing.T) {
	cluster := startPrivateCluster(t)
	dsn := cluster.dsn
	s, err := load(t, map[string]any{"dsn": dsn, "schema": freshSchema(t, dsn), "create": true, "notify": true, "query_timeout": "1s"})
	if err != nil {
		t.Fatal(err)
	}
	addUser(t, s, "john", true)
	addUser(t, s, "amy", true)
	createToken(t, s, "john")
	createToken(t, s, "amy")

	f := listenerFlushes(s)
	stop, pushed := watchListening(t, s, f)
	defer stop()
	if !pushed {
		t.Fatal("Watch with notify says changes are not pushed")
	}
	ctx := context.Background()
	if _, err := s.DeleteUserToken(ctx, "john"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.wait(time.Second); !ok {
		t.Fatal("no flush before the restart")
	}

	f.drain()
	cluster.stop(t)
	if _, ok := f.wait(5 * time.Second); !ok {
		t.Fatal("the server stopped: no flush within 5s")
	}
	relistened := f.afterListen(2)
	cluster.start(t)
	waitListening(t, s, 2)
	select {
	case <-relistened:
	case <-time.After(5 * time.Second):
		t.Fatal("no flush after LISTEN succeeded again")
	}

	django, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer django.Close(ctx)
	for i := range 5 {
		f.drain()
		begin := time.Now()
		if _, err := django.Exec(ctx, `UPDATE `+s.db.authUser+` SET "is_active" = NOT "is_active" WHERE "username" = 'amy'`); err != nil {
			t.Fatal(err)
		}
		at, ok := f.wait(2 * time.Second)
		if !ok {
			t.Fatalf("change %d after the restart: no flush", i)
		}
		t.Logf("change %d after the restart: flushed after %v", i, at.Sub(begin))
	}
}

// listenerGoroutines counts the goroutines running a listener loop.
func listenerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Count(string(buf), "store/postgres.(*listener).run(")
}

// checkListeners fails the test unless, within a second, want goroutines
// run a listener loop (one that has closed its done channel may still be
// on its way out).
func checkListeners(t *testing.T, want int, when string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		n := listenerGoroutines()
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d listener goroutines %s, want %d", n, when, want)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// One listener per database whoever watches; it ends with the last stop,
// starts again with the next Watch, and ends with the module's Cleanup:
// no goroutine is left behind.
func TestWatchLeavesNoGoroutineBehind(t *testing.T) {
	dsn := freshDatabase(t, testDSN(t))
	before := runtime.NumGoroutine()
	a, err := load(t, map[string]any{"dsn": dsn, "create": true, "notify": true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := load(t, map[string]any{"dsn": dsn})
	if err != nil {
		t.Fatal(err)
	}
	if a.shared != b.shared {
		t.Fatal("two modules on one dsn do not share the pool")
	}
	// b watches once LISTEN has taken effect: each watcher's next flush
	// is the change's.
	fa, fb := listenerFlushes(a), newFlushes()
	stopA, _ := watchListening(t, a, fa)
	stopB, _ := b.Watch(fb.flush, nil)
	checkListeners(t, 1, "for two watches of one database")
	addUser(t, a, "john", true)
	createToken(t, a, "john")
	if _, ok := fa.wait(time.Second); !ok {
		t.Error("first watcher: no flush")
	}
	if _, ok := fb.wait(time.Second); !ok {
		t.Error("second watcher: no flush")
	}

	stopA()
	stopA() // twice is harmless
	checkListeners(t, 1, "with one watch left")
	stopB()
	checkListeners(t, 0, "after the last stop")
	_, _ = a.Watch(func() {}, nil)
	waitListening(t, a, 2)
	checkListeners(t, 1, "after watching again")
	// Cleanup without stop: the module's watches end with it, and the
	// pool (with its listener) with the last module.
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := b.Cleanup(); err != nil {
		t.Fatal(err)
	}
	checkListeners(t, 0, "after Cleanup")
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Cleanup, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The pool's destruction stops a listener that still has watchers.
func TestPoolDestructStopsTheListener(t *testing.T) {
	dsn := freshDatabase(t, testDSN(t))
	s, err := load(t, map[string]any{"dsn": dsn, "create": true})
	if err != nil {
		t.Fatal(err)
	}
	l := s.shared.listener
	_ = l.watch(func() {}, nil, nil) // a watch no module will stop
	waitListening(t, s, 1)
	if err := s.Cleanup(); err != nil {
		t.Fatal(err)
	}
	checkListeners(t, 0, "after the pool is gone")
	stop := l.watch(func() {}, nil, nil)
	defer stop()
	// A loop would have been started by now (a goroutine that has not
	// run yet does not show in the stack dump that checkListeners reads).
	started, registered := l.subs.Running(), l.subs.Len()
	if started || registered != 0 {
		t.Errorf("a watch of a closed pool: loop started %v, %d flush functions registered; want none", started, registered)
	}
	checkListeners(t, 0, "after a watch of a closed pool")
}

// The listener's log lines name no password, whatever goes wrong.
func TestListenerLogsNoPassword(t *testing.T) {
	testDSN(t)
	const password = "Hunter22-listen"
	core, logs := observer.New(zap.DebugLevel)
	s := &Postgres{DSN: "postgres://django:" + password + "@127.0.0.1:1/app?sslmode=disable&connect_timeout=1", Notify: true}
	t.Cleanup(func() { _ = s.Cleanup() })
	if err := s.provision(context.Background(), zap.New(core)); err != nil {
		t.Fatal(err)
	}
	f := newFlushes()
	stop, pushed := s.Watch(f.flush, nil)
	defer stop()
	if !pushed {
		t.Error("notify set, database unreachable: Watch says changes are not pushed")
	}
	for range 2 { // the first failure and a retry
		if _, ok := f.wait(5 * time.Second); !ok {
			t.Fatal("no flush while the database is unreachable")
		}
	}
	if logs.FilterMessageSnippet("interrupted").Len() == 0 {
		t.Errorf("no warning logged: %v", logs.All())
	}
	for _, e := range logs.All() {
		b, _ := json.Marshal(e.ContextMap())
		if text := e.Message + " " + string(b); strings.Contains(text, password) {
			t.Errorf("password leaked: %s", text)
		}
	}
}

// The triggers as `migrate --notify` installs them fire on TRUNCATE of
// any table, on an UPDATE of each identity column of auth_user and of
// is_staff and is_superuser, on any change to the tables of groups and
// permissions, and not on a login's last_login update. A connection of the test's own
// LISTENs; after each statement it sends a marker, and the notifications
// received before the marker are the statement's (the queue is in commit
// order), so "none" needs no waiting.
func TestTriggersFireOnTruncateAndIdentityUpdatesOnly(t *testing.T) {
	dsn := freshDatabase(t, testDSN(t))
	s, err := load(t, map[string]any{"dsn": dsn, "create": true, "notify": true})
	if err != nil {
		t.Fatal(err)
	}
	addUser(t, s, "john", true)
	createToken(t, s, "john")
	addUser(t, s, "tokenless", true)
	ctx := context.Background()
	django := admin(t, dsn)
	witness := admin(t, dsn)
	if _, err := witness.Exec(ctx, `LISTEN "`+channel+`"`); err != nil {
		t.Fatal(err)
	}
	// notified runs q and returns the payloads it sent, sorted.
	notified := func(t *testing.T, q string) []string {
		t.Helper()
		if _, err := django.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if _, err := django.Exec(ctx, `SELECT pg_notify('`+channel+`', 'marker')`); err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			n, err := witness.WaitForNotification(wctx)
			cancel()
			if err != nil {
				t.Fatalf("%s: waiting for the marker after %v: %v", q, got, err)
			}
			if n.Channel != channel {
				t.Fatalf("a notification on channel %q", n.Channel)
			}
			if n.Payload == "marker" {
				slices.Sort(got)
				return got
			}
			got = append(got, n.Payload)
		}
	}
	for _, c := range []struct {
		name string
		sql  string
		want []string
	}{
		{"login: last_login", `UPDATE "auth_user" SET "last_login" = now() WHERE "username" = 'john'`, nil},
		{"UPDATE of auth_user.username", `UPDATE "auth_user" SET "username" = 'johnny' WHERE "username" = 'john'`, []string{"auth_user"}},
		{"UPDATE of auth_user.is_active", `UPDATE "auth_user" SET "is_active" = false WHERE "username" = 'johnny'`, []string{"auth_user"}},
		// A user without a token: authtoken_token's foreign key holds.
		{"UPDATE of auth_user.id", `UPDATE "auth_user" SET "id" = "id" + 1000 WHERE "username" = 'tokenless'`, []string{"auth_user"}},
		{"UPDATE of authtoken_token", `UPDATE "authtoken_token" SET "created" = now()`, []string{"authtoken_token"}},
		{"TRUNCATE authtoken_token", `TRUNCATE "authtoken_token"`, []string{"authtoken_token"}},
		// What require reads: the flags (by the second trigger on
		// auth_user), and the tables of groups and permissions.
		{"UPDATE of auth_user.is_staff", `UPDATE "auth_user" SET "is_staff" = true WHERE "username" = 'johnny'`, []string{"auth_user"}},
		{"UPDATE of auth_user.is_superuser", `UPDATE "auth_user" SET "is_superuser" = true WHERE "username" = 'johnny'`, []string{"auth_user"}},
		{"INSERT into django_content_type", `INSERT INTO "django_content_type" ("app_label", "model") VALUES ('reports', 'report')`, []string{"django_content_type"}},
		{"INSERT into auth_permission", `INSERT INTO "auth_permission" ("name", "content_type_id", "codename") SELECT 'Can view report', "id", 'view_report' FROM "django_content_type"`, []string{"auth_permission"}},
		{"INSERT into auth_group", `INSERT INTO "auth_group" ("name") VALUES ('editors')`, []string{"auth_group"}},
		{"INSERT into auth_user_groups", `INSERT INTO "auth_user_groups" ("user_id", "group_id") SELECT u."id", g."id" FROM "auth_user" u, "auth_group" g`, []string{"auth_user_groups"}},
		{"INSERT into auth_group_permissions", `INSERT INTO "auth_group_permissions" ("group_id", "permission_id") SELECT g."id", p."id" FROM "auth_group" g, "auth_permission" p`, []string{"auth_group_permissions"}},
		{"INSERT into auth_user_user_permissions", `INSERT INTO "auth_user_user_permissions" ("user_id", "permission_id") SELECT u."id", p."id" FROM "auth_user" u, "auth_permission" p`, []string{"auth_user_user_permissions"}},
		{"UPDATE of auth_group.name", `UPDATE "auth_group" SET "name" = 'writers'`, []string{"auth_group"}},
		{"UPDATE of auth_permission.codename", `UPDATE "auth_permission" SET "codename" = 'see_report'`, []string{"auth_permission"}},
		{"UPDATE of django_content_type.app_label", `UPDATE "django_content_type" SET "app_label" = 'papers'`, []string{"django_content_type"}},
		{"DELETE from auth_user_groups", `DELETE FROM "auth_user_groups"`, []string{"auth_user_groups"}},
		// As Django's flush runs it: every table at once (auth_user cannot
		// be truncated alone).
		{"TRUNCATE of every table (manage.py flush)", `TRUNCATE "auth_user", "authtoken_token", "django_content_type", "auth_permission", "auth_group", "auth_group_permissions", "auth_user_groups", "auth_user_user_permissions"`,
			[]string{"auth_group", "auth_group_permissions", "auth_permission", "auth_user", "auth_user_groups", "auth_user_user_permissions", "authtoken_token", "django_content_type"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := notified(t, c.sql); !slices.Equal(got, c.want) {
				t.Errorf("%s: notifications %q, want %q", c.sql, got, c.want)
			}
		})
	}
}

// The pool never opens more than max_conns connections; the notify
// listener holds one more of its own, outside the pool (a pooled
// connection must not keep a LISTEN). Under concurrent lookups the
// database sees exactly max_conns backends of the store's (its DSN's
// application_name) while nobody watches, and max_conns + 1 while a watch
// runs, as a cache with notify does.
func TestBackendsUnderLoadAreMaxConnsPlusTheListener(t *testing.T) {
	const maxConns = 3
	for _, c := range []struct {
		name    string
		appName string // unique: the other case's backends may be on their way out
		watch   bool
		want    int
	}{
		{"no watch: max_conns", "token_auth_unwatched", false, maxConns},
		{"watching with notify: max_conns + 1", "token_auth_watched", true, maxConns + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			const workers = 16
			appName := c.appName
			dsn := freshDatabase(t, testDSN(t)) + "&application_name=" + appName
			s, err := load(t, map[string]any{"dsn": dsn, "create": true, "notify": true, "max_conns": maxConns, "query_timeout": "10s"})
			if err != nil {
				t.Fatal(err)
			}
			addUser(t, s, "john", true)
			key := createToken(t, s, "john")
			if c.watch {
				stop, pushed := watchListening(t, s, listenerFlushes(s))
				defer stop()
				if !pushed {
					t.Fatal("Watch with notify says changes are not pushed")
				}
			}

			counter := admin(t, testDSN(t))
			ctx := context.Background()
			backends := func() (int, error) {
				var n int
				err := counter.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'`, appName).Scan(&n)
				return n, err
			}
			var (
				wg       sync.WaitGroup
				done     = make(chan struct{})
				lookups  atomic.Int64
				firstErr atomic.Value
			)
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-done:
							return
						default:
						}
						if id, err := s.Lookup(ctx, key); err != nil || id.Username != "john" {
							firstErr.CompareAndSwap(nil, fmt.Sprintf("Lookup = %+v, %v", id, err))
							return
						}
						lookups.Add(1)
					}
				}()
			}
			most, samples := 0, 0
			for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); samples++ {
				n, err := backends()
				if err != nil {
					close(done)
					wg.Wait()
					t.Fatal(err)
				}
				most = max(most, n)
			}
			close(done)
			wg.Wait()
			if e := firstErr.Load(); e != nil {
				t.Fatal(e)
			}
			// Idle connections stay in the pool: the count holds still.
			after, err := backends()
			if err != nil {
				t.Fatal(err)
			}
			most = max(most, after)
			pooled := s.shared.Stat().TotalConns()
			t.Logf("%d lookups by %d workers, max_conns %d: pool %d connections; pg_stat_activity: at most %d backends over %d samples, %d after the load",
				lookups.Load(), workers, maxConns, pooled, most, samples+1, after)
			if pooled != maxConns {
				t.Fatalf("the load left %d connections in the pool, want max_conns = %d (did it fill the pool?)", pooled, maxConns)
			}
			if most != c.want || after != c.want {
				t.Errorf("backends: at most %d, %d after the load; want %d", most, after, c.want)
			}
		})
	}
}
