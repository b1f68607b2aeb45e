package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokenauth/caddy-tokenauth/internal/knox"
	"github.com/tokenauth/caddy-tokenauth/store"
)

// knoxFixtureTokens is testdata/knox/tokens.json: the users and tokens
// real knox made in testdata/knox/knox.sqlite3, keys included.
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

func readKnoxFixtureTokens(t *testing.T) knoxFixtureTokens {
	t.Helper()
	raw, err := os.ReadFile("testdata/knox/tokens.json")
	if err != nil {
		t.Fatal(err)
	}
	var f knoxFixtureTokens
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Tokens) == 0 {
		t.Fatal("no tokens in testdata/knox/tokens.json")
	}
	return f
}

// The database real knox made opens as it is (it has no authtoken_token)
// and each of its tokens is found by its key's token_key, with knox's
// digest of the key, its user and times.
func TestKnoxFixtureDatabaseOpensAndItsTokensAreFound(t *testing.T) {
	path := knoxFixture(t)
	s := provision(t, path, false)
	fx := readKnoxFixtureTokens(t)
	ctx := context.Background()
	now := time.Now()
	for _, tok := range fx.Tokens {
		t.Run(tok.User+" "+tok.Kind, func(t *testing.T) {
			got, err := s.KnoxLookup(ctx, knox.TokenKey(tok.Token), now)
			if err != nil || len(got) != 1 {
				t.Fatalf("KnoxLookup(%s) = %+v, %v; want one candidate", tok.TokenKey, got, err)
			}
			c := got[0]
			if c.Digest != tok.Digest || !knox.Match(knox.Digest(tok.Token), c.Digest) {
				t.Errorf("digest %s…, want knox's %s… (the key's)", c.Digest[:16], tok.Digest[:16])
			}
			u := fx.Users[tok.User]
			if want := (store.Identity{ID: itoa(u.ID), Username: tok.User, Active: u.IsActive}); c.User != want {
				t.Errorf("user %+v, want %+v", c.User, want)
			}
			created, _ := time.Parse(time.RFC3339, tok.Created)
			var expiry time.Time
			if tok.Expiry != nil {
				expiry, _ = time.Parse(time.RFC3339, *tok.Expiry)
			}
			if !c.Created.Equal(created) || !c.Expiry.Equal(expiry) {
				t.Errorf("created %v, expiry %v; want %v, %v", c.Created, c.Expiry, created, expiry)
			}
			// victor holds the expired token.
			if want := tok.User == "victor"; c.UserHasExpired != want {
				t.Errorf("UserHasExpired = %v, want %v", c.UserHasExpired, want)
			}
		})
	}
	// No authtoken_token: DRF's lookup cannot answer.
	if _, err := s.Lookup(ctx, strings.Repeat("a", 40)); !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "no such table: authtoken_token") {
		t.Errorf("Lookup in a knox-only database: %v, want ErrUnavailable saying there is no authtoken_token", err)
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// The store writes knox's times, and last_login, as Django does: the
// same text for the same instants as the rows real knox wrote, and a
// fraction of six digits only when there is one.
func TestKnoxTimesAreWrittenAsDjangoWritesThem(t *testing.T) {
	fixture, err := sql.Open("sqlite", "file:"+knoxFixture(t)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer fixture.Close()
	s, path := openStore(t)
	ctx := context.Background()
	if err := s.MigrateKnox(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(ctx, store.NewUser{Username: "uma", Password: "!", Active: true}); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var uid string
	if err := raw.QueryRow(`SELECT CAST("id" AS TEXT) FROM "auth_user" WHERE "username" = 'uma'`).Scan(&uid); err != nil {
		t.Fatal(err)
	}
	texts := func(db *sql.DB, digest string) (created, expiry string) {
		t.Helper()
		var e sql.NullString
		if err := db.QueryRow(`SELECT CAST("created" AS TEXT), CAST("expiry" AS TEXT) FROM "knox_authtoken" WHERE "digest" = ?`, digest).Scan(&created, &e); err != nil {
			t.Fatal(err)
		}
		if !e.Valid {
			return created, "NULL"
		}
		return created, e.String
	}

	for _, tok := range readKnoxFixtureTokens(t).Tokens {
		created, _ := time.Parse(time.RFC3339, tok.Created)
		var expiry time.Time
		if tok.Expiry != nil {
			expiry, _ = time.Parse(time.RFC3339, *tok.Expiry)
		}
		if err := s.KnoxCreate(ctx, store.KnoxNew{Digest: tok.Digest, TokenKey: tok.TokenKey, UserID: uid, Created: created, Expiry: expiry}, 0); err != nil {
			t.Fatal(err)
		}
		wantC, wantE := texts(fixture, tok.Digest)
		if gotC, gotE := texts(raw, tok.Digest); gotC != wantC || gotE != wantE {
			t.Errorf("%s token: stored created %q, expiry %q; knox stored %q, %q", tok.Kind, gotC, gotE, wantC, wantE)
		}
	}

	// Fractions: Python's str() of a datetime.
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2026, 11, 24, 7, 30, 9, 105062000, time.UTC), "2026-11-24 07:30:09.105062"},
		{time.Date(2026, 11, 24, 7, 30, 9, 5000, time.UTC), "2026-11-24 07:30:09.000005"},
		{time.Date(2026, 11, 24, 7, 30, 9, 500000000, time.UTC), "2026-11-24 07:30:09.500000"},
		{time.Date(2026, 11, 24, 7, 30, 9, 999, time.UTC), "2026-11-24 07:30:09"},
		{time.Date(2026, 11, 24, 1, 30, 9, 0, time.FixedZone("UTC-6", -6*3600)), "2026-11-24 07:30:09"},
	} {
		tok := knox.Generate("")
		if err := s.KnoxCreate(ctx, store.KnoxNew{Digest: knox.Digest(tok), TokenKey: knox.TokenKey(tok), UserID: uid, Created: c.at, Expiry: c.at}, 0); err != nil {
			t.Fatal(err)
		}
		if gotC, gotE := texts(raw, knox.Digest(tok)); gotC != c.want || gotE != c.want {
			t.Errorf("%v: stored %q, %q; want %q", c.at, gotC, gotE, c.want)
		}
		if err := s.SetLastLogin(ctx, uid, c.at); err != nil {
			t.Fatal(err)
		}
		var last string
		if err := raw.QueryRow(`SELECT CAST("last_login" AS TEXT) FROM "auth_user" WHERE "id" = ?`, uid).Scan(&last); err != nil {
			t.Fatal(err)
		}
		if last != c.want {
			t.Errorf("%v: last_login %q, want %q", c.at, last, c.want)
		}
	}

	// What the DRF side writes has Django's form too.
	if _, err := s.TokenFor(ctx, "uma", false); err != nil {
		t.Fatal(err)
	}
	django := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$`)
	for _, q := range []string{`SELECT CAST("created" AS TEXT) FROM "authtoken_token"`, `SELECT CAST("date_joined" AS TEXT) FROM "auth_user"`} {
		var v string
		if err := raw.QueryRow(q).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if !django.MatchString(v) {
			t.Errorf("%s: %q is not as Django writes it", q, v)
		}
	}
}

// djangoText at the one instant in a million with no microseconds: no
// fraction, as Python's str() (the rest of the time it has six digits).
func TestDjangoTextOmitsAZeroFraction(t *testing.T) {
	for at, want := range map[time.Time]string{
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC):         "2026-01-02 03:04:05",
		time.Date(2026, 1, 2, 3, 4, 5, 999, time.UTC):       "2026-01-02 03:04:05",
		time.Date(2026, 1, 2, 3, 4, 5, 1000, time.UTC):      "2026-01-02 03:04:05.000001",
		time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.UTC): "2026-01-02 03:04:05.999999",
	} {
		if got := djangoText(at); got != want {
			t.Errorf("djangoText(%v) = %q, want %q", at, got, want)
		}
		if got := parseDjangoTime(want); !got.Equal(at.Truncate(time.Microsecond)) {
			t.Errorf("parseDjangoTime(%q) = %v, want %v", want, got, at.Truncate(time.Microsecond))
		}
	}
}

// Each lookup is one query that SQLite answers from indexes: no table is
// scanned, whatever its size.
func TestLookupsUseIndexesOnly(t *testing.T) {
	s, path := openStore(t)
	if err := s.MigrateKnox(context.Background()); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, c := range map[string]struct {
		query string
		args  []any
		want  []string
	}{
		"lookupSQL": {lookupSQL, []any{"k"}, []string{"authtoken_token USING INDEX sqlite_autoindex_authtoken_token_1", "auth_user USING INTEGER PRIMARY KEY"}},
		"knoxLookupSQL": {knoxLookupSQL, []any{"k", djangoText(time.Now())}, []string{
			"knox_authtoken USING INDEX knox_authtoken_token_key_8f4f7d47", "auth_user USING INTEGER PRIMARY KEY", "U0 USING INDEX knox_authtoken_user_id_e5a5d899"}},
	} {
		rows, err := db.Query("EXPLAIN QUERY PLAN "+c.query, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		joined := strings.Join(plan, "; ")
		if strings.Contains(joined, "SCAN") {
			t.Errorf("%s scans a table: %s", name, joined)
		}
		for _, w := range c.want {
			if !strings.Contains(joined, "SEARCH "+w) {
				t.Errorf("%s: plan %q does not search %s", name, joined, w)
			}
		}
	}
}

// A database may hold either token table: the missing one's queries fail
// until Migrate or MigrateKnox makes it, and then work on the pool
// already open; with neither, the store does not open.
func TestEitherTokenTableWillDo(t *testing.T) {
	ctx := context.Background()
	t.Run("DRF's only", func(t *testing.T) {
		s, _ := openStore(t)
		if _, err := s.KnoxLookup(ctx, "0123456789abcde", time.Now()); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("KnoxLookup without knox_authtoken: %v, want ErrUnavailable", err)
		}
		if err := s.MigrateKnox(ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := s.KnoxLookup(ctx, "0123456789abcde", time.Now()); err != nil || len(got) != 0 {
			t.Errorf("KnoxLookup once MigrateKnox made the table: %+v, %v", got, err)
		}
	})
	t.Run("knox's only", func(t *testing.T) {
		s := provision(t, knoxFixture(t), false)
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		key, err := s.TokenFor(ctx, "uma", false)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := s.Lookup(ctx, key); err != nil || id.Username != "uma" {
			t.Errorf("Lookup once Migrate made authtoken_token: %+v, %v", id, err)
		}
	})
	t.Run("neither", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "db.sqlite3")
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		sqlExecOn(t, db, ddlAuthUser)
		db.Close()
		s := &SQLite{Path: path}
		cctx, cancel := caddy.NewContext(caddy.Context{Context: ctx})
		defer cancel()
		err = s.Provision(cctx)
		if err == nil || !strings.Contains(err.Error(), "no table authtoken_token (run Django's migrate with rest_framework.authtoken or knox installed") {
			t.Errorf("Provision with neither token table: %v", err)
		}
		_ = s.Cleanup()
	})
}

// A knox token deleted by another connection (Django's logout) reaches
// the watcher, as any commit does.
func TestWatchNoticesAKnoxDeleteByAnotherConnection(t *testing.T) {
	path := knoxFixture(t)
	s := provision(t, path, false)
	flushed := make(chan struct{}, 16)
	stop, _ := s.Watch(func() {
		select {
		case flushed <- struct{}{}:
		default:
		}
	}, nil)
	defer stop()
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	polls := &s.db.watchers.polls
	awaitWatch(t, "the poller's first read", atLeast(polls, polls.Load()+2))
	for len(flushed) > 0 {
		<-flushed
	}
	res, err := other.Exec(`DELETE FROM "knox_authtoken" WHERE "token_key" = ?`, readKnoxFixtureTokens(t).Tokens[0].TokenKey)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("deleted %d rows, want 1", n)
	}
	select {
	case <-flushed:
	case <-time.After(2 * time.Second):
		t.Fatal("a knox delete by another connection: no flush within 2s")
	}
}
