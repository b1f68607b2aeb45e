package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenauth/caddy-tokenauth/internal/knox"
	"github.com/tokenauth/caddy-tokenauth/store"
)

// knoxFixtureTokens is ../../testdata/knox/tokens.json: the users and tokens
// real knox made, keys included.
type knoxFixtureTokens struct {
	Users map[string]struct {
		ID       int  `json:"id"`
		IsActive bool `json:"is_active"`
	} `json:"users"`
	Tokens []struct {
		User     string  `json:"user"`
		Token    string  `json:"token"`
		TokenKey string  `json:"token_key"`
		Digest   string  `json:"digest"`
		Created  string  `json:"created"`
		Expiry   *string `json:"expiry"`
		Kind     string  `json:"kind"`
	} `json:"tokens"`
}

// knoxFixtureSchema makes, in a fresh schema, auth_user as Django does and
// knox_authtoken exactly as pg_dump showed the table knox's migrations
// made (../../testdata/knox/schema.postgres.sql), and returns the schema.
func knoxFixtureSchema(t *testing.T, conn *pgx.Conn, dsn string) string {
	t.Helper()
	ctx := context.Background()
	schema := freshSchema(t, dsn)
	dump, err := os.ReadFile("../../testdata/knox/schema.postgres.sql")
	if err != nil {
		t.Fatal(err)
	}
	d := newDatabase(nil, schema, false, 0)
	stmts := []string{`CREATE SCHEMA "` + schema + `"`}
	for _, stmt := range ddlAuthUser {
		stmts = append(stmts, d.ddl(stmt))
	}
	stmts = append(stmts, strings.ReplaceAll(string(dump), "public.", `"`+schema+`".`))
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return schema
}

// What knox's migrations make is what MigrateKnox makes, and the
// contract's description of it (knoxPGSchema) is right.
func TestKnoxFixtureSchemaIsWhatMigrateKnoxMakes(t *testing.T) {
	dsn := testDSN(t)
	conn := admin(t, dsn)
	fixture := knoxFixtureSchema(t, conn, dsn)
	if got, want := pgSchema(t, conn, fixture, "knox_authtoken"), knoxPGSchema(fixture); got != want {
		t.Errorf("the table knox's migrations made:\n got %s\nwant %s", got, want)
	}
	s := newStore(t)
	if err := s.MigrateKnox(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := pgSchema(t, conn, s.Schema, "knox_authtoken"), knoxPGSchema(s.Schema); got != want {
		t.Errorf("the table MigrateKnox made:\n got %s\nwant %s", got, want)
	}
}

// A database with knox's table and not DRF's opens, and the tokens knox
// made are found by their keys' token_key, with knox's digests.
func TestKnoxFixtureTokensAreFound(t *testing.T) {
	dsn := testDSN(t)
	conn := admin(t, dsn)
	ctx := context.Background()
	schema := knoxFixtureSchema(t, conn, dsn)
	raw, err := os.ReadFile("../../testdata/knox/tokens.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx knoxFixtureTokens
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	for name, u := range fx.Users {
		if _, err := conn.Exec(ctx, `INSERT INTO "`+schema+`"."auth_user" ("id", "password", "is_superuser", "username", "first_name", "last_name", "email", "is_staff", "is_active", "date_joined") VALUES ($1, '!', false, $2, '', '', '', false, $3, now())`, u.ID, name, u.IsActive); err != nil {
			t.Fatal(err)
		}
	}
	for _, tok := range fx.Tokens {
		if _, err := conn.Exec(ctx, `INSERT INTO "`+schema+`"."knox_authtoken" ("digest", "created", "user_id", "expiry", "token_key") VALUES ($1, $2, $3, $4, $5)`,
			tok.Digest, tok.Created, fx.Users[tok.User].ID, tok.Expiry, tok.TokenKey); err != nil {
			t.Fatal(err)
		}
	}
	s, err := load(t, map[string]any{"dsn": dsn, "schema": schema})
	if err != nil {
		t.Fatalf("a knox-only database: %v", err)
	}
	for _, tok := range fx.Tokens {
		got, err := s.KnoxLookup(ctx, knox.TokenKey(tok.Token), time.Now())
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: KnoxLookup = %+v, %v", tok.TokenKey, got, err)
		}
		c := got[0]
		u := fx.Users[tok.User]
		created, _ := time.Parse(time.RFC3339, tok.Created)
		var expiry time.Time
		if tok.Expiry != nil {
			expiry, _ = time.Parse(time.RFC3339, *tok.Expiry)
		}
		if !knox.Match(knox.Digest(tok.Token), c.Digest) || c.User.Username != tok.User || c.User.ID != itoa(u.ID) || c.User.Active != u.IsActive ||
			!c.Created.Equal(created) || !c.Expiry.Equal(expiry) || c.UserHasExpired != (tok.User == "victor") {
			t.Errorf("%s %s: candidate %+v", tok.User, tok.Kind, c)
		}
	}
	if _, err := s.Lookup(ctx, strings.Repeat("a", 40)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Lookup without authtoken_token: %v, want ErrUnavailable", err)
	}
}

// Both lookups are answered from indexes (seq scans off, so that the
// planner shows whether it could).
func TestLookupsUseIndexesOnly(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if err := s.MigrateKnox(ctx); err != nil {
		t.Fatal(err)
	}
	conn := admin(t, testDSN(t))
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		query string
		args  []any
		want  []string
	}{
		// The primary key or its _like twin, the token_key index or its
		// _like twin: either is an index on the column.
		"lookupSQL":     {s.db.q(lookupSQL), []any{"k"}, []string{"authtoken_token_", "auth_user_pkey"}},
		"knoxLookupSQL": {s.db.q(knoxLookupSQL), []any{"k", time.Now()}, []string{"knox_authtoken_token_key_8f4f7d47", "auth_user_pkey", "knox_authtoken_user_id_e5a5d899"}},
	} {
		rows, err := conn.Query(ctx, "EXPLAIN "+c.query, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		joined := strings.Join(plan, "\n")
		if strings.Contains(joined, "Seq Scan") {
			t.Errorf("%s scans a table:\n%s", name, joined)
		}
		for _, index := range c.want {
			if !strings.Contains(joined, "using "+index) {
				t.Errorf("%s does not use %s:\n%s", name, index, joined)
			}
		}
	}
}

// witness LISTENs on the channel on a connection of its own; notified
// runs q (on conn) and returns the payloads the statement sent, sorted:
// after q it sends a marker, and what comes before it is q's (the queue is
// in commit order), so "none" needs no waiting.
func witness(t *testing.T, dsn string, conn *pgx.Conn) (notified func(t *testing.T, q string, args ...any) []string) {
	t.Helper()
	ctx := context.Background()
	w := admin(t, dsn)
	if _, err := w.Exec(ctx, `LISTEN "`+channel+`"`); err != nil {
		t.Fatal(err)
	}
	return func(t *testing.T, q string, args ...any) []string {
		t.Helper()
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return untilMarker(t, conn, w)
	}
}

// untilMarker sends a marker on conn and returns the payloads w received
// before it, sorted.
func untilMarker(t *testing.T, conn, w *pgx.Conn) []string {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `SELECT pg_notify('`+channel+`', 'marker')`); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := w.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("waiting for the marker after %v: %v", got, err)
		}
		if n.Payload == "marker" {
			slices.Sort(got)
			return got
		}
		got = append(got, n.Payload)
	}
}

// knox_authtoken's triggers fire on what can make a cached answer stale
// (a delete, a truncation, an update of anything but expiry, expiry moved
// earlier or set where there was none), and not on a refresh (expiry
// moved later, or to NULL), a write that changes nothing, or an insert.
func TestKnoxTriggersSkipExpiryMovedLater(t *testing.T) {
	dsn := freshDatabase(t, testDSN(t))
	s, err := load(t, map[string]any{"dsn": dsn, "create": true, "notify": true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.MigrateKnox(ctx); err != nil {
		t.Fatal(err)
	}
	addUser(t, s, "john", true)
	addUser(t, s, "amy", true)
	django := admin(t, dsn)
	var john, amy int64
	if err := django.QueryRow(ctx, `SELECT (SELECT "id" FROM "auth_user" WHERE "username" = 'john'), (SELECT "id" FROM "auth_user" WHERE "username" = 'amy')`).Scan(&john, &amy); err != nil {
		t.Fatal(err)
	}
	insert := `INSERT INTO "knox_authtoken" ("digest", "created", "user_id", "expiry", "token_key") VALUES ($1, now(), $2, now() + interval '10 hours', $3)`
	tok := knoxTokenRow()
	if _, err := django.Exec(ctx, insert, tok.digest, john, tok.key); err != nil {
		t.Fatal(err)
	}
	notified := witness(t, dsn, django)
	set := func(assignment string) string {
		return `UPDATE "knox_authtoken" SET ` + assignment + ` WHERE "digest" = '` + tok.digest + `'`
	}
	for _, c := range []struct {
		name string
		sql  string
		want []string
	}{
		{"refresh: expiry moved later", set(`"expiry" = "expiry" + interval '1 hour'`), nil},
		{"Django's full save with expiry moved later", set(`"digest" = "digest", "token_key" = "token_key", "user_id" = "user_id", "created" = "created", "expiry" = "expiry" + interval '1 minute'`), nil},
		{"expiry unchanged", set(`"expiry" = "expiry"`), nil},
		{"an update of no row", `UPDATE "knox_authtoken" SET "user_id" = 0 WHERE "digest" = 'none'`, nil},
		{"expiry moved earlier", set(`"expiry" = "expiry" - interval '2 hours'`), []string{"knox_authtoken"}},
		{"expiry set to never", set(`"expiry" = NULL`), nil},
		{"expiry set where there was none", set(`"expiry" = now()`), []string{"knox_authtoken"}},
		{"user_id", set(`"user_id" = ` + itoa(int(amy))), []string{"knox_authtoken"}},
		{"token_key", set(`"token_key" = 'x' || substr("token_key", 2)`), []string{"knox_authtoken"}},
		{"created", set(`"created" = "created" - interval '1 second'`), []string{"knox_authtoken"}},
		{"digest", set(`"digest" = 'f' || substr("digest", 2)`), []string{"knox_authtoken"}},
		{"an insert (a login)", insert, nil},
		{"a delete", `DELETE FROM "knox_authtoken" WHERE "user_id" = ` + itoa(int(john)), []string{"knox_authtoken"}},
		{"TRUNCATE", `TRUNCATE "knox_authtoken"`, []string{"knox_authtoken"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var args []any
			if c.sql == insert {
				next := knoxTokenRow()
				args = []any{next.digest, john, next.key}
			}
			if got := notified(t, c.sql, args...); !slices.Equal(got, c.want) {
				t.Errorf("%s: notifications %q, want %q", c.sql, got, c.want)
			}
		})
		if strings.HasPrefix(c.name, "digest") {
			tok.digest = "f" + tok.digest[1:]
		}
	}
}

// knoxTokenRow is a fresh token's token_key and digest.
func knoxTokenRow() struct{ key, digest string } {
	tok := knox.Generate("")
	return struct{ key, digest string }{knox.TokenKey(tok), knox.Digest(tok)}
}

// The store's own deletes of knox tokens notify, in their transaction,
// with or without triggers; its inserts, refreshes and last_login writes
// do not, and neither does a delete that deleted nothing.
func TestKnoxStoreWritesNotifyDeletesOnly(t *testing.T) {
	dsn := freshDatabase(t, testDSN(t))
	s, err := load(t, map[string]any{"dsn": dsn, "create": true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.MigrateKnox(ctx); err != nil {
		t.Fatal(err)
	}
	addUser(t, s, "john", true)
	conn := admin(t, dsn)
	var uid string
	if err := conn.QueryRow(ctx, `SELECT "id"::text FROM "auth_user" WHERE "username" = 'john'`).Scan(&uid); err != nil {
		t.Fatal(err)
	}
	w := admin(t, dsn)
	if _, err := w.Exec(ctx, `LISTEN "`+channel+`"`); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	create := func(created, expiry time.Time) knoxTok {
		t.Helper()
		tok := knoxTokenRow()
		if err := s.KnoxCreate(ctx, store.KnoxNew{Digest: tok.digest, TokenKey: tok.key, UserID: uid, Created: created, Expiry: expiry}, 3); err != nil {
			t.Fatal(err)
		}
		return knoxTok(tok)
	}
	var a, b, c, d knoxTok
	for _, step := range []struct {
		name  string
		write func() error
		want  []string
	}{
		{"KnoxCreate", func() error {
			a, b, c = create(now, now.Add(time.Hour)), create(now, now.Add(time.Hour)), create(now.Add(-2*time.Hour), now.Add(-time.Hour))
			d = create(now, now.Add(time.Hour))
			return nil
		}, nil},
		{"KnoxRefresh", func() error { return s.KnoxRefresh(ctx, a.digest, now.Add(2*time.Hour)) }, nil},
		{"SetLastLogin", func() error { return s.SetLastLogin(ctx, uid, now) }, nil},
		{"KnoxDelete of nothing", func() error { _, err := s.KnoxDelete(ctx, strings.Repeat("0", 128)); return err }, nil},
		{"KnoxCleanup of nothing expired", func() error { _, err := s.KnoxCleanup(ctx, uid, now.Add(-3*time.Hour)); return err }, nil},
		{"KnoxDelete", func() error { _, err := s.KnoxDelete(ctx, a.digest); return err }, []string{"knox_authtoken"}},
		{"KnoxCleanup", func() error { _, err := s.KnoxCleanup(ctx, uid, now); return err }, []string{"knox_authtoken"}},
		{"KnoxDeleteByTokenKey", func() error { _, err := s.KnoxDeleteByTokenKey(ctx, b.key); return err }, []string{"knox_authtoken"}},
		{"KnoxPurgeExpired of nothing expired", func() error { _, err := s.KnoxPurgeExpired(ctx, now); return err }, nil},
		{"KnoxDeleteUser", func() error { _, err := s.KnoxDeleteUser(ctx, uid); return err }, []string{"knox_authtoken"}},
		{"KnoxDeleteUser of nothing", func() error { _, err := s.KnoxDeleteUser(ctx, uid); return err }, nil},
		{"KnoxPurgeExpired", func() error {
			create(now.Add(-2*time.Hour), now.Add(-time.Hour))
			_, err := s.KnoxPurgeExpired(ctx, now)
			return err
		}, []string{"knox_authtoken"}},
	} {
		if err := step.write(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := untilMarker(t, conn, w); !slices.Equal(got, step.want) {
			t.Errorf("%s: notifications %q, want %q", step.name, got, step.want)
		}
	}
	_, _ = c, d
}

// knoxTok is a token's token_key and digest.
type knoxTok struct{ key, digest string }

// Watch says changes are pushed only when every table there has its
// triggers: knox_authtoken counts once it exists, and not before.
func TestTriggersPresentCountKnoxOnlyWhereItIs(t *testing.T) {
	dsn := freshDatabase(t, testDSN(t))
	conn := admin(t, dsn)
	ctx := context.Background()
	pushed := func(t *testing.T) bool {
		t.Helper()
		s, err := load(t, map[string]any{"dsn": dsn})
		if err != nil {
			t.Fatal(err)
		}
		stop, pushed := s.Watch(func() {}, nil)
		stop()
		return pushed
	}
	withNotify, err := load(t, map[string]any{"dsn": dsn, "create": true, "notify": true})
	if err != nil {
		t.Fatal(err)
	}
	if !pushed(t) {
		t.Fatal("DRF's tables with their triggers, no knox_authtoken: Watch says changes are not pushed")
	}
	plain, err := load(t, map[string]any{"dsn": dsn})
	if err != nil {
		t.Fatal(err)
	}
	watched := func(s *Postgres) bool {
		stop, pushed := s.Watch(func() {}, nil)
		stop()
		return pushed
	}
	if !watched(plain) {
		t.Fatal("a store without notify over DRF's tables with their triggers: Watch says changes are not pushed")
	}
	if err := plain.MigrateKnox(ctx); err != nil {
		t.Fatal(err)
	}
	// The store that made knox_authtoken looks for the triggers again.
	if watched(plain) {
		t.Error("knox_authtoken made without triggers: the store that made it says changes are pushed")
	}
	if pushed(t) {
		t.Error("knox_authtoken without triggers: Watch says changes are pushed")
	}
	if err := withNotify.MigrateKnox(ctx); err != nil {
		t.Fatal(err)
	}
	trig, _ := ourTriggers(t, conn)
	want := withPermissionTriggers("public", "public.auth_user:token_auth_notify", "public.authtoken_token:token_auth_notify", "public.knox_authtoken:token_auth_notify", "public.knox_authtoken:token_auth_notify_update")
	if !slices.Equal(trig, want) {
		t.Errorf("after MigrateKnox with notify: triggers %v, want %v", trig, want)
	}
	if !pushed(t) {
		t.Error("every table with its triggers: Watch says changes are not pushed")
	}
	if _, err := conn.Exec(ctx, `ALTER TABLE "knox_authtoken" DISABLE TRIGGER "token_auth_notify_update"`); err != nil {
		t.Fatal(err)
	}
	if pushed(t) {
		t.Error("knox_authtoken's update trigger disabled: Watch says changes are pushed")
	}
	if _, err := conn.Exec(ctx, `ALTER TABLE "knox_authtoken" ENABLE TRIGGER "token_auth_notify_update"`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DROP TABLE "authtoken_token"`); err != nil {
		t.Fatal(err)
	}
	if !pushed(t) {
		t.Error("knox's table and auth_user with their triggers, no authtoken_token: Watch says changes are not pushed")
	}
}

// The notify option installs knox_authtoken's triggers where the table
// is, at provision, and never a trigger twice.
func TestNotifyInstallsKnoxTriggersWhereTheTableIs(t *testing.T) {
	dsn := freshDatabase(t, testDSN(t))
	conn := admin(t, dsn)
	ctx := context.Background()
	plain, err := load(t, map[string]any{"dsn": dsn, "create": true})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.MigrateKnox(ctx); err != nil {
		t.Fatal(err)
	}
	if trig, _ := ourTriggers(t, conn); len(trig) != 0 {
		t.Fatalf("MigrateKnox without notify installed %v", trig)
	}
	for i := range 2 {
		if _, err := load(t, map[string]any{"dsn": dsn, "notify": true}); err != nil {
			t.Fatal(err)
		}
		trig, _ := ourTriggers(t, conn)
		want := withPermissionTriggers("public", "public.auth_user:token_auth_notify", "public.authtoken_token:token_auth_notify", "public.knox_authtoken:token_auth_notify", "public.knox_authtoken:token_auth_notify_update")
		if !slices.Equal(trig, want) {
			t.Errorf("provision %d with notify: triggers %v, want %v", i+1, trig, want)
		}
	}
}
