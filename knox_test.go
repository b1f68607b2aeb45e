package tokenauth

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokenauth/caddy-tokenauth/internal/knox"
	"github.com/tokenauth/caddy-tokenauth/password"
)

// knoxFixtureToken is one token of the database real knox made
// (testdata/knox, from the project's knox fixture).
type knoxFixtureToken struct {
	User     string `json:"user"`
	Token    string `json:"token"`
	TokenKey string `json:"token_key"`
	Digest   string `json:"digest"`
	Kind     string `json:"kind"` // live, never, expired
}

// knoxFixture is a handler with tokens knox over a copy of the database
// real knox made: uma (two tokens, one never expiring), victor (a live and
// an expired one), wendy (inactive), xavier (none). Every user's password
// is testPassword, hashed cheaply.
type knoxFixture struct {
	*fixture
	tokens map[string]knoxFixtureToken // by user and kind: "uma live"
	db     *sql.DB
}

func newKnoxFixture(t testing.TB, configure func(*TokenAuth)) *knoxFixture {
	t.Helper()
	raw, err := os.ReadFile("testdata/knox/tokens.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tokens []knoxFixtureToken `json:"tokens"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("testdata/knox/knox.sqlite3")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "knox.sqlite3")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	// The test's own connection waits for the store's writes.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	enc, err := password.EncodePBKDF2SHA256(testPassword, "abcdefghijklmnopqrstuv", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE auth_user SET password = ?`, enc); err != nil {
		t.Fatal(err)
	}
	kf := &knoxFixture{tokens: map[string]knoxFixtureToken{}, db: db}
	for _, tok := range doc.Tokens {
		kf.tokens[tok.User+" "+tok.Kind] = tok
	}
	h := &TokenAuth{StoreRaw: json.RawMessage(`{"kind":"sqlite","path":"` + path + `"}`), Tokens: &Tokens{Kind: tokensKnox}}
	if configure != nil {
		configure(h)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Cleanup() })
	kf.fixture = &fixture{h: h, path: path, ctx: ctx}
	return kf
}

// rows counts the rows of knox_authtoken matching where.
func (kf *knoxFixture) rows(t testing.TB, where string, args ...any) int {
	t.Helper()
	var n int
	if err := kf.db.QueryRow(`SELECT count(*) FROM knox_authtoken WHERE `+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// eventually waits up to 100 ms for cond, the bound of knox's writes made
// off the request path.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(100 * time.Millisecond)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 100 ms: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func basicAuth(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// Tokens real knox made authenticate, as knox answers them: live and
// never-expiring ones pass, an expired one is "Invalid token." and its row
// is gone within 100 ms, an inactive user's is refused.
func TestKnoxTokensOfRealKnoxAuthenticate(t *testing.T) {
	kf := newKnoxFixture(t, nil)
	for _, c := range []struct {
		token, user string
		code        int
		body        string
	}{
		{"uma live", "uma", 200, ""},
		{"uma never", "uma", 200, ""},
		{"victor live", "victor", 200, ""},
		{"wendy live", "", 401, `{"detail":"User inactive or deleted."}`},
		{"victor expired", "", 401, `{"detail":"Invalid token."}`},
	} {
		tok, ok := kf.tokens[c.token]
		if !ok {
			t.Fatalf("no %s token in the fixture", c.token)
		}
		r := kf.do(t, "Token "+tok.Token)
		if r.code != c.code || r.body != c.body || r.username != c.user || r.nextCalled != (c.code == 200) {
			t.Errorf("%s: %d %s user %q next %v; want %d %s user %q", c.token, r.code, r.body, r.username, r.nextCalled, c.code, c.body, c.user)
		}
	}
	expired := kf.tokens["victor expired"]
	eventually(t, "the expired token's row deleted", func() bool { return kf.rows(t, "digest = ?", expired.Digest) == 0 })
	if n := kf.rows(t, "digest = ?", kf.tokens["victor live"].Digest); n != 1 {
		t.Errorf("victor's live token was deleted with the expired one")
	}
	// Wrong digest, right token_key: refused.
	forged := kf.tokens["uma live"].Token[:knox.TokenKeyLength] + strings.Repeat("0", 64-knox.TokenKeyLength)
	if r := kf.do(t, "Token "+forged); r.code != 401 || r.body != `{"detail":"Invalid token."}` {
		t.Errorf("a key with uma's token_key and another digest: %d %s", r.code, r.body)
	}
	// A key that cannot be knox's, and invalid UTF-8 (knox: 500).
	if r := kf.do(t, "Token "+strings.Repeat("a", 40)); r.code != 401 || r.body != `{"detail":"Invalid token."}` {
		t.Errorf("a DRF-shaped key: %d %s", r.code, r.body)
	}
	if r := kf.do(t, "Token \xff"+kf.tokens["uma live"].Token); r.code != 401 || !strings.Contains(r.body, "invalid characters") {
		t.Errorf("invalid UTF-8: %d %s", r.code, r.body)
	}
}

// Presenting any token of a user deletes that user's expired tokens, as
// knox's _cleanup_token does, when token_auth asks the database.
func TestKnoxCleansUpTheUsersExpiredTokens(t *testing.T) {
	kf := newKnoxFixture(t, nil)
	expired := kf.tokens["victor expired"]
	if r := kf.do(t, "Token "+kf.tokens["victor live"].Token); r.code != 200 {
		t.Fatalf("victor's live token: %d %s", r.code, r.body)
	}
	eventually(t, "victor's expired token deleted", func() bool { return kf.rows(t, "digest = ?", expired.Digest) == 0 })
	if n := kf.rows(t, "1"); n != 4 {
		t.Errorf("%d tokens left, want the 4 live ones", n)
	}
}

// A token is never served from the cache past its expiry.
func TestKnoxCacheNeverServesATokenPastItsExpiry(t *testing.T) {
	kf := newKnoxFixture(t, func(h *TokenAuth) { h.Cache = &Cache{TTL: caddy.Duration(time.Hour)} })
	tok := kf.tokens["uma live"]
	soon := time.Now().UTC().Add(300 * time.Millisecond)
	if _, err := kf.db.Exec(`UPDATE knox_authtoken SET expiry = ? WHERE digest = ?`, soon.Format("2006-01-02 15:04:05.000000"), tok.Digest); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the change is seen (PRAGMA data_version), the cache flushed
	if r := kf.do(t, "Token "+tok.Token); r.code != 200 {
		t.Fatalf("before its expiry: %d %s", r.code, r.body)
	}
	time.Sleep(time.Until(soon))
	if r := kf.do(t, "Token "+tok.Token); r.code != 401 || r.body != `{"detail":"Invalid token."}` {
		t.Fatalf("at its expiry, with a cache ttl of an hour: %d %s", r.code, r.body)
	}
}

var knoxLoginAnswer = regexp.MustCompile(`^\{"expiry":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z)","token":"([0-9a-f]{64})"\}$`)

// Login with Basic credentials is knox's LoginView: a token that works,
// its digest stored and never the key, last_login set; and the Basic
// view's refusals.
func TestKnoxBasicLogin(t *testing.T) {
	kf := newKnoxFixture(t, func(h *TokenAuth) { h.Login = &Login{Path: "/login/"} })
	before := time.Now().UTC()
	r := kf.send(t, "POST", "/login/", "", "", "Authorization", basicAuth("xavier", testPassword))
	m := knoxLoginAnswer.FindStringSubmatch(r.body)
	if r.code != 200 || m == nil || r.header.Get("Content-Type") != "application/json" || r.header.Get("Allow") != "POST, OPTIONS" {
		t.Fatalf("Basic login: %d %s %v", r.code, r.body, r.header)
	}
	expiry, _ := time.Parse(time.RFC3339Nano, m[1])
	if d := expiry.Sub(before); d < 10*time.Hour || d > 10*time.Hour+time.Minute {
		t.Errorf("expiry %s is not login + 10h", m[1])
	}
	token := m[2]
	if n := kf.rows(t, "digest = ? AND token_key = ? AND user_id = 4", knox.Digest(token), token[:15]); n != 1 {
		t.Errorf("the new token's row: %d", n)
	}
	if got := kf.do(t, "Token "+token); got.code != 200 || got.username != "xavier" {
		t.Errorf("the new token: %d %s", got.code, got.body)
	}
	var lastLogin sql.NullString
	_ = kf.db.QueryRow(`SELECT last_login FROM auth_user WHERE id = 4`).Scan(&lastLogin)
	if !lastLogin.Valid {
		t.Error("last_login not set")
	}
	file, _ := os.ReadFile(kf.path)
	if bytes.Contains(file, []byte(token)) {
		t.Error("the database file holds the key in plain text")
	}

	for _, c := range []struct {
		name, auth, body string
	}{
		{"wrong password", basicAuth("xavier", "nope"), `{"detail":"Invalid username/password."}`},
		{"unknown user", basicAuth("nobody", testPassword), `{"detail":"Invalid username/password."}`},
		{"inactive user", basicAuth("wendy", testPassword), `{"detail":"Invalid username/password."}`},
		{"no colon", "Basic " + base64.StdEncoding.EncodeToString([]byte("xavier")), `{"detail":"Invalid username/password."}`},
		{"Basic alone", "Basic", `{"detail":"Invalid basic header. No credentials provided."}`},
		{"two words", "Basic a b", `{"detail":"Invalid basic header. Credentials string should not contain spaces."}`},
		{"not base64", "Basic YQ", `{"detail":"Invalid basic header. Credentials not correctly base64 encoded."}`},
		{"nothing", "", `{"detail":"Authentication credentials were not provided."}`},
		{"a valid knox token, no body", "Token " + token, `{"detail":"Authentication credentials were not provided."}`},
	} {
		var hdr []string
		if c.auth != "" {
			hdr = []string{"Authorization", c.auth}
		}
		r := kf.send(t, "POST", "/login/", "", "", hdr...)
		if r.code != 401 || r.body != c.body || r.header.Get("WWW-Authenticate") != `Basic realm="api"` {
			t.Errorf("%s: %d %s %q", c.name, r.code, r.body, r.header.Get("WWW-Authenticate"))
		}
	}
	if r := kf.send(t, "GET", "/login/", "", "", "Authorization", basicAuth("xavier", testPassword)); r.code != 405 || r.body != `{"detail":"Method \"GET\" not allowed."}` {
		t.Errorf("GET with Basic credentials: %d %s", r.code, r.body)
	}
}

// Login with a body is knox's username and password recipe, with DRF's
// serializer errors; a bad Token header is refused first.
func TestKnoxRecipeLogin(t *testing.T) {
	kf := newKnoxFixture(t, func(h *TokenAuth) {
		h.Login = &Login{Path: "/login/"}
		h.Tokens.Prefix = "app_"
		h.Tokens.NeverExpire = true
	})
	r := kf.send(t, "POST", "/login/", jsonCT, `{"username":"xavier","password":"`+testPassword+`"}`)
	var got struct {
		Expiry *string `json:"expiry"`
		Token  string  `json:"token"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); r.code != 200 || err != nil || got.Expiry != nil ||
		!strings.HasPrefix(got.Token, "app_") || !knox.Plausible(got.Token) || !strings.HasPrefix(r.body, `{"expiry":null,"token":"app_`) {
		t.Fatalf("recipe login: %d %s", r.code, r.body)
	}
	if n := kf.rows(t, "digest = ? AND token_key = ? AND expiry IS NULL", knox.Digest(got.Token), got.Token[:15]); n != 1 {
		t.Errorf("the new token's row: %d", n)
	}
	for _, c := range []struct {
		name, body string
		hdr        []string
		code       int
		want       string
	}{
		{"bad password", `{"username":"xavier","password":"x"}`, nil, 400, `{"non_field_errors":["Unable to log in with provided credentials."]}`},
		{"no password", `{"username":"xavier"}`, nil, 400, `{"password":["This field is required."]}`},
		{"bad token header", `{"username":"xavier","password":"` + testPassword + `"}`, []string{"Authorization", "Token " + strings.Repeat("0", 64)}, 401, `{"detail":"Invalid token."}`},
	} {
		r := kf.send(t, "POST", "/login/", jsonCT, c.body, c.hdr...)
		if r.code != c.code || r.body != c.want {
			t.Errorf("%s: %d %s", c.name, r.code, r.body)
		}
	}
	// Another user's valid token is ignored: the token goes to xavier.
	r = kf.send(t, "POST", "/login/", jsonCT, `{"username":"xavier","password":"`+testPassword+`"}`, "Authorization", "Token "+kf.tokens["uma live"].Token)
	if err := json.Unmarshal([]byte(r.body), &got); r.code != 200 || err != nil {
		t.Fatalf("recipe login with uma's token: %d %s", r.code, r.body)
	}
	if n := kf.rows(t, "digest = ? AND user_id = 4", knox.Digest(got.Token)); n != 1 {
		t.Error("the token did not go to xavier")
	}
}

// The per-user limit counts live and never-expiring tokens, not expired
// ones; past it both ways answer knox's 403, and only the recipe's sets
// last_login.
func TestKnoxLimitPerUser(t *testing.T) {
	kf := newKnoxFixture(t, func(h *TokenAuth) {
		h.Login = &Login{Path: "/login/"}
		h.Tokens.LimitPerUser = 2
	})
	limit := `{"error":"Maximum amount of tokens allowed per user exceeded."}`
	limited := testutil.ToFloat64(loginTokenLimit)
	defer func() {
		if n := testutil.ToFloat64(loginTokenLimit) - limited; n != 3 {
			t.Errorf("login_attempts_total{result=\"token_limit\"} moved by %v, want 3", n)
		}
	}()
	lastLogin := func(id int) string {
		var s sql.NullString
		_ = kf.db.QueryRow(`SELECT last_login FROM auth_user WHERE id = ?`, id).Scan(&s)
		return s.String
	}
	// uma holds two (live and never): refused both ways.
	if r := kf.send(t, "POST", "/login/", "", "", "Authorization", basicAuth("uma", testPassword)); r.code != 403 || r.body != limit {
		t.Errorf("Basic, uma at the limit: %d %s", r.code, r.body)
	}
	if lastLogin(1) != "" {
		t.Error("the Basic view's 403 set last_login")
	}
	if r := kf.send(t, "POST", "/login/", jsonCT, `{"username":"uma","password":"`+testPassword+`"}`); r.code != 403 || r.body != limit {
		t.Errorf("recipe, uma at the limit: %d %s", r.code, r.body)
	}
	if lastLogin(1) == "" {
		t.Error("the recipe's 403 did not set last_login")
	}
	// victor holds a live and an expired one: one more is allowed.
	if r := kf.send(t, "POST", "/login/", "", "", "Authorization", basicAuth("victor", testPassword)); r.code != 200 {
		t.Errorf("Basic, victor under the limit: %d %s", r.code, r.body)
	}
	if r := kf.send(t, "POST", "/login/", "", "", "Authorization", basicAuth("victor", testPassword)); r.code != 403 || r.body != limit {
		t.Errorf("Basic, victor at the limit: %d %s", r.code, r.body)
	}
}

// logout deletes the presented token, logout_all every token of its user;
// both 204, and the cache forgets at once.
func TestKnoxLogoutAndLogoutAll(t *testing.T) {
	kf := newKnoxFixture(t, func(h *TokenAuth) {
		h.Logout = "/logout/"
		h.LogoutAll = "/logoutall/"
	})
	live, never := kf.tokens["uma live"], kf.tokens["uma never"]
	for _, tok := range []knoxFixtureToken{live, never} {
		if r := kf.do(t, "Token "+tok.Token); r.code != 200 {
			t.Fatalf("before logout: %d", r.code)
		}
	}
	if r := kf.send(t, "GET", "/logout/", "", "", "Authorization", "Token "+live.Token); r.code != 405 || r.header.Get("Allow") != "POST, OPTIONS" {
		t.Errorf("GET logout: %d %v", r.code, r.header)
	}
	if r := kf.send(t, "POST", "/logout/", "", "", "Authorization", "Token "+live.Token, "Accept", "text/html"); r.code != 406 || kf.rows(t, "digest = ?", live.Digest) != 1 {
		t.Errorf("logout with an unacceptable Accept: %d %s; it must delete nothing", r.code, r.body)
	}
	if r := kf.send(t, "OPTIONS", "/logoutall/", "", "", "Authorization", "Token "+live.Token); r.code != 200 ||
		r.body != `{"name":"Logout All","description":"Log the user out of all sessions\nI.E. deletes all auth tokens for the user","renders":["application/json"],"parses":["application/json","application/x-www-form-urlencoded","multipart/form-data"]}` {
		t.Errorf("OPTIONS logoutall: %d %s", r.code, r.body)
	}
	if r := kf.send(t, "POST", "/logout/", "", "", "Authorization", "Token nope"); r.code != 401 || r.header.Get("Allow") != "POST, OPTIONS" || r.header.Get("WWW-Authenticate") != "Token" {
		t.Errorf("logout with a bad token: %d %v", r.code, r.header)
	}
	if r := kf.send(t, "POST", "/logout/", "", "", "Authorization", "Token "+live.Token); r.code != 204 || r.body != "" || r.header.Get("Allow") != "POST, OPTIONS" {
		t.Fatalf("logout: %d %q %v", r.code, r.body, r.header)
	}
	if kf.rows(t, "digest = ?", live.Digest) != 0 || kf.rows(t, "digest = ?", never.Digest) != 1 {
		t.Error("logout deleted the wrong rows")
	}
	if r := kf.do(t, "Token "+live.Token); r.code != 401 {
		t.Errorf("after logout, the token: %d", r.code)
	}
	if r := kf.do(t, "Token "+never.Token); r.code != 200 {
		t.Errorf("after logout, uma's other token: %d", r.code)
	}
	// logout_all: victor gets a second token; both are cached, the one
	// presented and the other, and both are refused after.
	victor := kf.tokens["victor live"]
	second := knox.Generate("")
	if _, err := kf.db.Exec(`INSERT INTO knox_authtoken (digest, created, user_id, expiry, token_key) VALUES (?, '2026-01-01 00:00:00', 2, NULL, ?)`, knox.Digest(second), knox.TokenKey(second)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new token seen", func() bool { return kf.do(t, "Token "+second).code == 200 })
	if r := kf.do(t, "Token "+victor.Token); r.code != 200 {
		t.Fatalf("victor's token: %d", r.code)
	}
	if r := kf.send(t, "POST", "/logoutall/", "", "", "Authorization", "Token "+second); r.code != 204 || r.body != "" {
		t.Fatalf("logoutall: %d %q", r.code, r.body)
	}
	if kf.rows(t, "user_id = 2") != 0 || kf.rows(t, "digest = ?", never.Digest) != 1 {
		t.Error("logoutall deleted the wrong rows")
	}
	for _, tok := range []string{second, victor.Token} {
		if r := kf.do(t, "Token "+tok); r.code != 401 {
			t.Errorf("after logoutall, a token of victor: %d", r.code)
		}
	}
}

// A key that cannot be knox's is refused without asking the database: it
// gets 401 while the database is broken, where a knox-shaped key gets 503.
func TestKnoxImplausibleKeyNeedsNoQuery(t *testing.T) {
	kf := newKnoxFixture(t, func(h *TokenAuth) { h.Cache = &Cache{Off: true} })
	if _, err := kf.db.Exec(`DROP TABLE knox_authtoken`); err != nil {
		t.Fatal(err)
	}
	if r := kf.do(t, "Token "+strings.Repeat("a", 40)); r.code != 401 || r.body != `{"detail":"Invalid token."}` {
		t.Errorf("a DRF-shaped key: %d %s", r.code, r.body)
	}
	if r := kf.do(t, "Token "+strings.Repeat("a", 64)); r.code != 503 {
		t.Errorf("a knox-shaped key with the table gone: %d %s", r.code, r.body)
	}
}

// Auto-refresh moves the expiry as knox does, off the request path: a
// thousand requests of one token make one write.
func TestKnoxAutoRefreshWritesOncePerInterval(t *testing.T) {
	kf := newKnoxFixture(t, func(h *TokenAuth) {
		h.Tokens.AutoRefresh = true
		h.Tokens.TTL = caddy.Duration(time.Hour)
	})
	if _, err := kf.db.Exec(`CREATE TABLE writes (n integer); INSERT INTO writes VALUES (0);
		CREATE TRIGGER count_writes AFTER UPDATE OF expiry ON knox_authtoken BEGIN UPDATE writes SET n = n + 1; END`); err != nil {
		t.Fatal(err)
	}
	tok := kf.tokens["uma live"]
	old := time.Now().UTC().Add(30 * time.Minute).Format("2006-01-02 15:04:05.000000")
	if _, err := kf.db.Exec(`UPDATE knox_authtoken SET expiry = ? WHERE digest = ?`, old, tok.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := kf.db.Exec(`UPDATE writes SET n = 0`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the change is seen, the cache flushed
	start := time.Now().UTC()
	for range 1000 {
		if r := kf.do(t, "Token "+tok.Token); r.code != 200 {
			t.Fatalf("request: %d %s", r.code, r.body)
		}
	}
	writes := func() int {
		var n int
		_ = kf.db.QueryRow(`SELECT n FROM writes`).Scan(&n)
		return n
	}
	eventually(t, "the refresh written", func() bool { return writes() >= 1 })
	time.Sleep(50 * time.Millisecond)
	if n := writes(); n != 1 {
		t.Errorf("%d writes for 1000 requests, want 1", n)
	}
	var expiry string
	_ = kf.db.QueryRow(`SELECT CAST(expiry AS TEXT) FROM knox_authtoken WHERE digest = ?`, tok.Digest).Scan(&expiry)
	e, err := time.Parse("2006-01-02 15:04:05.999999", expiry)
	if err != nil || e.Before(start.Add(time.Hour-time.Second)) || e.After(time.Now().Add(time.Hour)) {
		t.Errorf("expiry after refresh %q, want about now + 1h", expiry)
	}
}

// max_age refuses DRF tokens created longer ago, and the cache never
// serves one past it.
func TestDRFMaxAge(t *testing.T) {
	f := newFixture(t, func(h *TokenAuth) {
		h.Tokens = &Tokens{MaxAge: caddy.Duration(time.Hour)}
		h.Cache = &Cache{TTL: caddy.Duration(time.Hour)}
	}, nil)
	// alice's token was created 2026-01-01.
	if r := f.do(t, "Token "+f.alice); r.code != 401 || r.body != `{"detail":"Invalid token."}` {
		t.Fatalf("a token older than max_age: %d %s", r.code, r.body)
	}
	db, err := sql.Open("sqlite", f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A token 400 ms short of max_age passes, until it reaches it.
	created := time.Now().UTC().Add(-time.Hour + 400*time.Millisecond)
	if _, err := db.Exec(`UPDATE authtoken_token SET key = ?, created = ? WHERE key = ?`, strings.Repeat("a", 40), created.Format("2006-01-02 15:04:05.000000"), f.alice); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the change is seen
	if r := f.do(t, "Token "+strings.Repeat("a", 40)); r.code != 200 {
		t.Fatalf("a token younger than max_age: %d %s", r.code, r.body)
	}
	time.Sleep(time.Until(created.Add(time.Hour)))
	if r := f.do(t, "Token "+strings.Repeat("a", 40)); r.code != 401 || r.body != `{"detail":"Invalid token."}` {
		t.Fatalf("the same token once max_age is reached, with a cache ttl of an hour: %d %s", r.code, r.body)
	}
}

// Under max_age, login replaces a token max_age refuses, where DRF's
// get_or_create would hand out the old key.
func TestDRFMaxAgeLoginRenewsAnOldToken(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/login/"}, func(h *TokenAuth) {
		h.Tokens = &Tokens{MaxAge: caddy.Duration(time.Hour)}
	})
	// alice's token was created 2026-01-01.
	r := f.send(t, "POST", "/login/", jsonCT, `{"username":"alice","password":"`+testPassword+`"}`)
	var got struct{ Token string }
	if err := json.Unmarshal([]byte(r.body), &got); r.code != 200 || err != nil || got.Token == f.alice || len(got.Token) != 40 {
		t.Fatalf("login with an old token: %d %s", r.code, r.body)
	}
	if res := f.do(t, "Token "+got.Token); res.code != 200 {
		t.Errorf("the renewed token: %d %s", res.code, res.body)
	}
	if res := f.do(t, "Token "+f.alice); res.code != 401 {
		t.Errorf("the old token: %d", res.code)
	}
	// A young token is handed out again.
	r2 := f.send(t, "POST", "/login/", jsonCT, `{"username":"alice","password":"`+testPassword+`"}`)
	if !strings.Contains(r2.body, got.Token) {
		t.Errorf("a second login: %s, want the same young token", r2.body)
	}
}

// A handler starts only where the token table it reads is there, and
// makes knox_authtoken where the store's create option says to.
func TestProvisionChecksTheTokenTableOfItsMode(t *testing.T) {
	provision := func(storeJSON string, tokens *Tokens) error {
		h := &TokenAuth{StoreRaw: json.RawMessage(storeJSON), Tokens: tokens}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		defer cancel()
		defer h.Cleanup()
		return h.Provision(ctx)
	}
	drfOnly := newFixture(t, nil, nil).path
	err := provision(`{"kind":"sqlite","path":"`+drfOnly+`"}`, &Tokens{Kind: tokensKnox})
	if err == nil || !strings.Contains(err.Error(), "no knox_authtoken table") || !strings.Contains(err.Error(), "caddy token migrate --tokens knox") {
		t.Errorf("knox on a DRF-only database: %v", err)
	}
	if err := provision(`{"kind":"sqlite","path":"`+drfOnly+`","create":true}`, &Tokens{Kind: tokensKnox}); err != nil {
		t.Errorf("knox with create on a DRF-only database: %v", err)
	}
	db, err := sql.Open("sqlite", drfOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ddl string
	if err := db.QueryRow(`SELECT sql FROM sqlite_master WHERE name = 'knox_authtoken'`).Scan(&ddl); err != nil || !strings.Contains(ddl, `"token_key" varchar(25) NOT NULL`) {
		t.Errorf("create did not make knox's table: %q %v", ddl, err)
	}
	knoxOnly := newKnoxFixture(t, nil).path
	err = provision(`{"kind":"sqlite","path":"`+knoxOnly+`"}`, nil)
	if err == nil || !strings.Contains(err.Error(), "no authtoken_token table") {
		t.Errorf("DRF tokens on a knox-only database: %v", err)
	}
}
