package integration

// Compatibility with the real django-rest-knox (django/knoxcheck.py on
// Debian's Django and DRF, knox from knoxSrc): tokens made by knox work in
// Caddy, tokens made by Caddy (its command line and its login) work in
// knox, on a Django database of each store kind. Where both answer, the
// same requests go to Caddy and to knox, each on its own copy of one
// database, and the answers and the rows left must agree.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	knoxInvalidToken = `{"detail":"Invalid token."}`
	knoxInactive     = `{"detail":"User inactive or deleted."}`
	knoxNotProvided  = `{"detail":"Authentication credentials were not provided."}`
	knoxLimit        = `{"error":"Maximum amount of tokens allowed per user exceeded."}`
)

func TestKnoxTokensWorkInCaddy(t *testing.T) {
	knoxRequire(t)
	djangoEachStore(t, testKnoxTokensWorkInCaddy)
}

func testKnoxTokensWorkInCaddy(t *testing.T, kind string) {
	seed := knoxNewDB(t, kind)
	knoxCreateUsers(t, seed,
		djangoUser{Username: "alice", Password: "alice-pw", Active: true},
		djangoUser{Username: "bob", Password: "bob-pw", Active: false},
		djangoUser{Username: "carol", Password: "carol-pw", Active: true},
		djangoUser{Username: "dora", Password: "dora-pw", Active: true})
	past := time.Now().Add(-time.Hour)
	other, none := "other_", ""
	s := knoxSettings{Prefix: "myapp_"}
	tk := knoxCreateTokens(t, seed, s,
		knoxNewToken{Username: "alice", Prefix: &none},                  // 0 live, 10h
		knoxNewToken{Username: "alice", NoExpiry: true, Prefix: &none},  // 1 never expires
		knoxNewToken{Username: "alice", Prefix: &other, TTL: time.Hour}, // 2 another prefix
		knoxNewToken{Username: "alice"},                                 // 3 Caddy's prefix
		knoxNewToken{Username: "bob"},                                   // 4 inactive user's
		knoxNewToken{Username: "dora", Expiry: &past},                   // 5 expired
		knoxNewToken{Username: "dora", Expiry: &past},                   // 6 expired
		knoxNewToken{Username: "dora", NoExpiry: true},                  // 7 never expires
		knoxNewToken{Username: "carol", Expiry: &past},                  // 8 expired
		knoxNewToken{Username: "carol"})                                 // 9 live
	if !strings.HasPrefix(tk[2].Token, "other_") || !strings.HasPrefix(tk[3].Token, "myapp_") || tk[3].TokenKey != tk[3].Token[:15] {
		t.Fatalf("knox did not use the prefixes: %q %q (token_key %q)", tk[2].Token, tk[3].Token, tk[3].TokenKey)
	}
	caddyDB, knoxDB := knoxCopyDB(t, seed), knoxCopyDB(t, seed)
	knoxStartCaddy(t, caddyDB, s, globalOptions, "")

	type step struct {
		name  string
		key   string
		after func(t *testing.T, got knoxResponse) // Caddy's side, right after its answer
	}
	steps := []step{
		{"live token", tk[0].Token, nil},
		{"never-expiring token", tk[1].Token, nil},
		{"token of another prefix", tk[2].Token, nil},
		{"token of Caddy's prefix", tk[3].Token, nil},
		{"inactive user's token", tk[4].Token, nil},
		{"expired token", tk[5].Token, func(t *testing.T, got knoxResponse) {
			for _, i := range []int{5, 6} {
				took := knoxWaitGone(t, caddyDB, tk[i].Digest, 100*time.Millisecond)
				t.Logf("expired token %d: row gone %v after the 401", i, took)
			}
		}},
		{"expired token again", tk[5].Token, nil},
		{"other expired token of the same user, cleaned up", tk[6].Token, nil},
		{"that user's live token", tk[7].Token, nil},
		{"live token of a user with an expired one", tk[9].Token, nil},
		{"live token, upper-cased", strings.ToUpper(tk[0].Token), nil},
		{"live token's token_key only", tk[0].TokenKey, nil},
		{"live token's token_key and another tail", tk[0].TokenKey + strings.Repeat("0", 49), nil},
		{"live token's digest", tk[0].Digest, nil},
	}
	reqs := make([]knoxRequest, len(steps))
	for i, st := range steps {
		reqs[i] = knoxGet(st.key)
	}
	caddy := make([]knoxResponse, len(steps))
	for i, st := range steps {
		caddy[i] = knoxSend(t, reqs[i])
		if st.after != nil {
			t.Run(st.name+": Caddy's side effects", func(t *testing.T) { st.after(t, caddy[i]) })
		}
	}
	knox := knoxAsk(t, knoxDB, s, reqs)
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) { knoxCompareWhoami(t, reqs[i], caddy[i], knox[i]) })
	}
	want := map[string]int{"live token": 200, "never-expiring token": 200, "token of another prefix": 200,
		"token of Caddy's prefix": 200, "inactive user's token": 401, "expired token": 401, "that user's live token": 200}
	for i, st := range steps {
		if w, ok := want[st.name]; ok && knox[i].Status != w {
			t.Errorf("knox answered %v to %s, the test expects %d", knox[i], st.name, w)
		}
	}
	t.Run("rows left", func(t *testing.T) {
		knoxCompareStates(t, tk, knoxState(t, caddyDB), knoxState(t, knoxDB))
	})
	t.Run("fixture made by real knox", func(t *testing.T) { testKnoxFixtureWorksInCaddy(t, kind) })
}

// knoxCompareStates fails the test where the rows Caddy left differ from
// the rows knox left: each seeded token is in both or in neither, with the
// same expiry; each user holds as many tokens in both, as many never
// expiring; last_login is set in both or in neither.
func knoxCompareStates(t *testing.T, seeded []knoxToken, caddy, knox knoxDBState) {
	t.Helper()
	for i, tk := range seeded {
		c, k := caddy.byDigest(tk.Digest), knox.byDigest(tk.Digest)
		switch {
		case (c == nil) != (k == nil):
			t.Errorf("seeded token %d (%s, %s…): in Caddy's database %v, in knox's %v", i, tk.User, tk.TokenKey, c != nil, k != nil)
		case c != nil && !knoxSameTime(c.Expiry, k.Expiry):
			t.Errorf("seeded token %d (%s, %s…): expiry %s in Caddy's database, %s in knox's", i, tk.User, tk.TokenKey, knoxFmt(c.Expiry), knoxFmt(k.Expiry))
		}
	}
	users := make(map[string]bool)
	for u := range caddy.Users {
		users[u] = true
	}
	for u := range knox.Users {
		users[u] = true
	}
	for u := range users {
		ct, kt := caddy.of(u), knox.of(u)
		never := func(ts []knoxToken) int {
			n := 0
			for _, tk := range ts {
				if tk.Expiry == nil {
					n++
				}
			}
			return n
		}
		if len(ct) != len(kt) || never(ct) != never(kt) {
			t.Errorf("user %s: %d tokens (%d never expiring) in Caddy's database, %d (%d) in knox's", u, len(ct), never(ct), len(kt), never(kt))
		}
		cl, kl := caddy.Users[u].LastLogin, knox.Users[u].LastLogin
		if (cl == nil) != (kl == nil) {
			t.Errorf("user %s: last_login %s in Caddy's database, %s in knox's", u, knoxFmt(cl), knoxFmt(kl))
		}
	}
}

func knoxSameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func knoxFmt(t *time.Time) string {
	if t == nil {
		return "NULL"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// knoxFixture is ../testdata/knox/tokens.json.
type knoxFixture struct {
	Users map[string]struct {
		ID       int64  `json:"id"`
		Password string `json:"password"`
		IsActive bool   `json:"is_active"`
	} `json:"users"`
	Tokens []knoxFixtureToken `json:"tokens"`
}

// knoxFixtureToken is a token of the fixture, with its plaintext.
type knoxFixtureToken struct {
	User     string `json:"user"`
	Token    string `json:"token"`
	TokenKey string `json:"token_key"`
	Digest   string `json:"digest"`
	Kind     string `json:"kind"` // live, never, expired
}

// knoxFixtureDB is a copy of ../testdata/knox/knox.sqlite3 for sqlite; for
// postgres, a knox database whose users and tokens are the fixture's rows.
func knoxFixtureDB(t *testing.T, kind string) djangoDB {
	t.Helper()
	src, err := filepath.Abs(filepath.Join("..", "testdata", "knox", "knox.sqlite3"))
	if err != nil {
		t.Fatal(err)
	}
	if kind == "sqlite" {
		return knoxCopyDB(t, djangoDB{kind: "sqlite", path: src})
	}
	db := knoxNewDB(t, kind)
	fix, err := sql.Open("sqlite", "file:"+src+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer fix.Close()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx) // before the database is copied
	copyRows := func(query, insert string, n int) {
		rows, err := fix.Query(query)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			vals := make([]any, n)
			ptrs := make([]any, n)
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, insert, vals...); err != nil {
				t.Fatalf("%s %v: %v", insert, vals, err)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	// SQLite holds naive UTC text; PostgreSQL reads it as UTC.
	copyRows(`SELECT id, password, CAST(last_login AS TEXT), is_superuser, username, last_name, email, is_staff, is_active, CAST(date_joined AS TEXT), first_name FROM auth_user`,
		`INSERT INTO auth_user (id, password, last_login, is_superuser, username, last_name, email, is_staff, is_active, date_joined, first_name)
			VALUES ($1, $2, ($3::text || '+00')::timestamptz, $4::int::bool, $5, $6, $7, $8::int::bool, $9::int::bool, ($10::text || '+00')::timestamptz, $11)`, 11)
	copyRows(`SELECT digest, CAST(created AS TEXT), user_id, CAST(expiry AS TEXT), token_key FROM knox_authtoken`,
		`INSERT INTO knox_authtoken (digest, created, user_id, expiry, token_key)
			VALUES ($1, ($2::text || '+00')::timestamptz, $3, ($4::text || '+00')::timestamptz, $5)`, 5)
	if _, err := conn.Exec(ctx, `SELECT setval(pg_get_serial_sequence('auth_user', 'id'), max(id)) FROM auth_user`); err != nil {
		t.Fatal(err)
	}
	return db
}

func testKnoxFixtureWorksInCaddy(t *testing.T, kind string) {
	var fix knoxFixture
	b, err := os.ReadFile(filepath.Join("..", "testdata", "knox", "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &fix); err != nil {
		t.Fatal(err)
	}
	seed := knoxFixtureDB(t, kind)
	caddyDB, knoxDB := knoxCopyDB(t, seed), knoxCopyDB(t, seed)
	knoxStartCaddy(t, caddyDB, knoxSettings{}, globalOptions, "")

	// The expired token first: knox cleans a user's expired tokens up
	// whenever one of the user's tokens is looked up.
	order := slices.Clone(fix.Tokens)
	slices.SortStableFunc(order, func(a, b knoxFixtureToken) int {
		if (a.Kind == "expired") != (b.Kind == "expired") {
			if a.Kind == "expired" {
				return -1
			}
			return 1
		}
		return 0
	})
	var reqs []knoxRequest
	var caddy []knoxResponse
	for _, tk := range order {
		if tk.Digest != knoxDigest(tk.Token) || tk.TokenKey != tk.Token[:15] {
			t.Fatalf("fixture token of %s: digest or token_key is not knox's", tk.User)
		}
		r := knoxGet(tk.Token)
		reqs = append(reqs, r)
		got := knoxSend(t, r)
		caddy = append(caddy, got)
		if tk.Kind == "expired" {
			took := knoxWaitGone(t, caddyDB, tk.Digest, 100*time.Millisecond)
			t.Logf("fixture's expired token of %s: row gone %v after the 401", tk.User, took)
		}
	}
	knox := knoxAsk(t, knoxDB, knoxSettings{}, reqs)
	for i, tk := range order {
		t.Run(tk.User+" "+tk.Kind, func(t *testing.T) {
			knoxCompareWhoami(t, reqs[i], caddy[i], knox[i])
			u := fix.Users[tk.User]
			var want string
			switch {
			case tk.Kind == "expired":
				want = "401 " + knoxInvalidToken
			case !u.IsActive:
				want = "401 " + knoxInactive
			default:
				want = fmt.Sprintf("200 user=%s id=%d", tk.User, u.ID)
			}
			if got := fmt.Sprintf("%d %s", caddy[i].Status, caddy[i].Body); got != want {
				t.Errorf("Caddy answered %s, want %s", got, want)
			}
		})
	}
	t.Run("rows left", func(t *testing.T) {
		cs, ks := knoxState(t, caddyDB), knoxState(t, knoxDB)
		var seeded []knoxToken
		for _, tk := range fix.Tokens {
			seeded = append(seeded, knoxToken{TokenKey: tk.TokenKey, Digest: tk.Digest, User: tk.User})
		}
		knoxCompareStates(t, seeded, cs, ks)
	})
}

func TestKnoxCaddyTokensWorkInKnox(t *testing.T) {
	knoxRequire(t)
	djangoEachStore(t, testKnoxCaddyTokensWorkInKnox)
}

func testKnoxCaddyTokensWorkInKnox(t *testing.T, kind string) {
	db := knoxNewDB(t, kind)
	ids := knoxCreateUsers(t, db,
		djangoUser{Username: "alice", Password: "alice-pw", Active: true},
		djangoUser{Username: "bob", Password: "bob-pw", Active: false},
		djangoUser{Username: "carol", Password: "carol-pw", Active: true})
	storeFlag := db.storeFlag()
	ok := func(user string) string { return fmt.Sprintf(`{"id":%d,"username":"%s"}`, ids[user], user) }
	// whoami asks knox about keys, in order.
	whoami := func(t *testing.T, keys ...string) []knoxResponse {
		t.Helper()
		var reqs []knoxRequest
		for _, k := range keys {
			reqs = append(reqs, knoxGet(k))
		}
		return knoxAsk(t, db, knoxSettings{}, reqs)
	}
	expect := func(t *testing.T, what string, got knoxResponse, status int, body string) {
		t.Helper()
		if got.Status != status || string(got.Body) != body {
			t.Errorf("knox on %s: %v, want %d %s", what, got, status, body)
		}
	}
	// row checks that the key's row is knox's: token_key, digest, the
	// user, and an expiry in [from+ttl, to+ttl] (nil: NULL).
	row := func(t *testing.T, key, user string, ttl time.Duration, from, to time.Time) {
		t.Helper()
		r := knoxState(t, db).byKey(key)
		switch {
		case r == nil:
			t.Errorf("no row with the digest of %s…", key[:15])
		case r.TokenKey != key[:15] || r.User != user:
			t.Errorf("row of %s…: token_key %q, user %q, want %q, %q", key[:15], r.TokenKey, r.User, key[:15], user)
		case ttl == 0 && r.Expiry != nil:
			t.Errorf("row of %s…: expiry %s, want NULL", key[:15], knoxFmt(r.Expiry))
		case ttl != 0 && (r.Expiry == nil || !knoxWithin(*r.Expiry, from.Add(ttl), to.Add(ttl), time.Second)):
			t.Errorf("row of %s…: expiry %s, want now + %v (%s … %s)", key[:15], knoxFmt(r.Expiry), ttl,
				from.Add(ttl).UTC().Format(time.RFC3339Nano), to.Add(ttl).UTC().Format(time.RFC3339Nano))
		}
	}
	create := func(t *testing.T, user string, args ...string) (key string, from, to time.Time) {
		t.Helper()
		from = time.Now()
		out := knoxCLI(t, append([]string{"create", user, "--tokens", "knox", storeFlag}, args...)...)
		to = time.Now()
		return knoxCLIKey(t, out, ""), from, to
	}

	// The keys are made here, before the subtests, so that each subtest
	// also runs alone.
	type made struct {
		key, user string
		ttl       time.Duration // 0: NULL
		from, to  time.Time
	}
	var cli []made
	for _, c := range []struct {
		user string
		ttl  time.Duration
		args []string
	}{
		{"alice", 30 * 24 * time.Hour, []string{"--expires", "30d"}},
		{"alice", 0, []string{"--expires", "none"}},
		{"carol", -1, nil},
	} {
		key, from, to := create(t, c.user, c.args...)
		cli = append(cli, made{key, c.user, c.ttl, from, to})
	}
	cliKeys := []string{cli[0].key, cli[1].key, cli[2].key}
	bobKey, _, _ := create(t, "bob", "--expires", "1h")
	for i, name := range []string{"caddy token create --expires 30d", "caddy token create --expires none", "caddy token create without --expires"} {
		m := cli[i]
		t.Run(name, func(t *testing.T) {
			expect(t, "the CLI's key", whoami(t, m.key)[0], 200, ok(m.user))
			if m.ttl < 0 {
				t.Logf("expiry without --expires: %s", knoxFmt(knoxState(t, db).byKey(m.key).Expiry))
				return
			}
			row(t, m.key, m.user, m.ttl, m.from, m.to)
		})
	}
	t.Run("caddy token create for an inactive user", func(t *testing.T) {
		expect(t, "the CLI's key", whoami(t, bobKey)[0], 401, knoxInactive)
	})
	t.Run("caddy token create for an unknown user", func(t *testing.T) {
		out, errOut, code := djangoCaddyCLI(t, "", "token", "create", "nobody", "--tokens", "knox", storeFlag)
		if code == 0 || out != "" {
			t.Errorf("exit %d, stdout %q (stderr %q), want a failure and no output", code, out, errOut)
		}
	})
	t.Run("caddy token list shows token_keys, never keys", func(t *testing.T) {
		out := knoxCLI(t, "list", "--tokens", "knox", storeFlag)
		for _, k := range cliKeys {
			if !strings.Contains(out, k[:15]) || strings.Contains(out, k) || strings.Contains(out, k[15:]) {
				t.Errorf("list, key %s…:\n%s", k[:15], out)
			}
		}
	})
	t.Run("caddy token revoke <token_key>", func(t *testing.T) {
		key, _, _ := create(t, "alice", "--expires", "1h")
		expect(t, "before", whoami(t, key)[0], 200, ok("alice"))
		knoxCLI(t, "revoke", key[:15], "--tokens", "knox", storeFlag)
		got := whoami(t, append([]string{key}, cliKeys...)...)
		expect(t, "the revoked key", got[0], 401, knoxInvalidToken)
		for i := range cliKeys {
			want := "alice"
			if i == 2 {
				want = "carol"
			}
			expect(t, "another key", got[i+1], 200, ok(want))
		}
	})
	t.Run("caddy token purge-expired", func(t *testing.T) {
		past := time.Now().Add(-time.Minute)
		old := knoxCreateTokens(t, db, knoxSettings{}, knoxNewToken{Username: "carol", Expiry: &past})[0]
		knoxCLI(t, "purge-expired", "--tokens", "knox", storeFlag)
		st := knoxState(t, db)
		if st.byDigest(old.Digest) != nil {
			t.Errorf("the expired token of carol is still there")
		}
		for _, k := range cliKeys {
			if st.byKey(k) == nil {
				t.Errorf("live token %s… purged", k[:15])
			}
		}
	})

	// Caddy's login, both flavours, with a prefix; then knox uses,
	// logs out and logs out everywhere with Caddy's keys.
	s := knoxSettings{TTL: 2 * time.Hour, Prefix: "myapp_"}
	knoxStartCaddy(t, db, s, globalOptions, "")
	logins := []struct {
		name string
		req  knoxRequest
		got  knoxResponse
	}{
		{name: "Caddy's login with Basic", req: knoxBasicLogin("alice", "alice-pw")},
		{name: "Caddy's login with a body", req: knoxPasswordLogin("alice", "alice-pw")},
		{name: "Caddy's login with a body, again", req: knoxPasswordLogin("alice", "alice-pw")},
	}
	var loginKeys []string
	for i := range logins {
		logins[i].got = knoxSend(t, logins[i].req)
		key, _ := knoxLoginBody(t, "Caddy", logins[i].got, s.Prefix)
		loginKeys = append(loginKeys, key)
	}
	for i, c := range logins {
		t.Run(c.name, func(t *testing.T) {
			key, expiry := knoxLoginBody(t, "Caddy", c.got, s.Prefix)
			row(t, key, "alice", s.TTL, c.got.Started, c.got.Finished)
			if r := knoxState(t, db).byKey(key); r != nil && !knoxSameTime(r.Expiry, expiry) {
				t.Errorf("stored expiry %s, the answer's %s", knoxFmt(r.Expiry), knoxFmt(expiry))
			}
			expect(t, "Caddy's key", whoami(t, loginKeys[i])[0], 200, ok("alice"))
		})
	}
	t.Run("knox logs out with Caddy's key", func(t *testing.T) {
		got := knoxAsk(t, db, knoxSettings{}, []knoxRequest{knoxPost(knoxLogout, loginKeys[0]), knoxGet(loginKeys[0]), knoxGet(loginKeys[1])})
		expect(t, "logout", got[0], 204, "")
		expect(t, "the logged-out key", got[1], 401, knoxInvalidToken)
		expect(t, "another key", got[2], 200, ok("alice"))
	})
	t.Run("knox logs out everywhere with Caddy's key", func(t *testing.T) {
		got := knoxAsk(t, db, knoxSettings{}, []knoxRequest{knoxPost(knoxLogoutAll, loginKeys[1]), knoxGet(loginKeys[2]), knoxGet(cliKeys[0]), knoxGet(cliKeys[2])})
		expect(t, "logoutall", got[0], 204, "")
		expect(t, "another login key", got[1], 401, knoxInvalidToken)
		expect(t, "a CLI key", got[2], 401, knoxInvalidToken)
		expect(t, "carol's CLI key", got[3], 200, ok("carol"))
	})
	t.Run("caddy token delete <user>", func(t *testing.T) {
		key, _, _ := create(t, "carol", "--expires", "1h")
		knoxCLI(t, "delete", "carol", "--tokens", "knox", storeFlag)
		got := whoami(t, key, cliKeys[2])
		expect(t, "carol's new key", got[0], 401, knoxInvalidToken)
		expect(t, "carol's older key", got[1], 401, knoxInvalidToken)
		if n := len(knoxState(t, db).of("carol")); n != 0 {
			t.Errorf("carol still has %d tokens", n)
		}
	})
	t.Run("stored datetimes are Django's", func(t *testing.T) { knoxCheckSQLiteTimes(t, db) })
}
