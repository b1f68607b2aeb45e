package tokenauth

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokenauth/caddy-tokenauth/store"
	"github.com/tokenauth/caddy-tokenauth/store/sqlite"
)

// fixture is a provisioned handler over a fresh SQLite store with an active
// user (alice) and an inactive one (bob), each with a token.
type fixture struct {
	h          *TokenAuth
	path       string
	alice, bob string
	aliceID    string
	ctx        caddy.Context // the handler was provisioned with
}

func newFixture(t testing.TB, configure func(*TokenAuth), storeOpts map[string]any) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db.sqlite3")
	f := &fixture{path: path, alice: store.GenerateKey(), bob: store.GenerateKey()}
	// A file as Django leaves it (its tables, rollback journal), seeded
	// before the handler starts: a write made after it would reach the
	// cache as a flush at a moment the test does not choose.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, ddl := range sqlite.Schema {
		if _, err := db.Exec(ddl); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO auth_user (password, is_superuser, username, last_name, email, is_staff, is_active, date_joined, first_name) VALUES ('!', 0, 'alice', '', '', 0, 1, '2026-01-01 00:00:00', ''), ('!', 0, 'bob', '', '', 0, 0, '2026-01-01 00:00:00', '')`); err != nil {
		t.Fatal(err)
	}
	for user, key := range map[string]string{"alice": f.alice, "bob": f.bob} {
		if _, err := db.Exec(`INSERT INTO authtoken_token (key, created, user_id) SELECT ?, '2026-01-01 00:00:00', id FROM auth_user WHERE username = ?`, key, user); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.QueryRow(`SELECT id FROM auth_user WHERE username = 'alice'`).Scan(&f.aliceID); err != nil {
		t.Fatal(err)
	}
	db.Close()
	cfg := map[string]any{"kind": "sqlite", "path": path}
	for k, v := range storeOpts {
		cfg[k] = v
	}
	raw, _ := json.Marshal(cfg)
	f.h = &TokenAuth{StoreRaw: raw}
	if configure != nil {
		configure(f.h)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	f.ctx = ctx
	if err := f.h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.h.Cleanup() })
	return f
}

type result struct {
	code       int
	body       string
	challenge  string
	ctype      string
	retryAfter string
	nextCalled bool
	userID     string
	username   string
}

func (f *fixture) do(t testing.TB, auth ...string) result {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/", nil)
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	rec := httptest.NewRecorder()
	repl := caddy.NewReplacer()
	req = caddyhttp.PrepareRequest(req, repl, rec, nil)
	var res result
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		res.nextCalled = true
		w.WriteHeader(http.StatusOK)
		return nil
	})
	if err := f.h.ServeHTTP(rec, req, next); err != nil {
		t.Fatalf("ServeHTTP returned %v", err)
	}
	res.code = rec.Code
	res.body = rec.Body.String()
	res.challenge = rec.Header().Get("WWW-Authenticate")
	res.ctype = rec.Header().Get("Content-Type")
	res.retryAfter = rec.Header().Get("Retry-After")
	res.userID, _ = repl.GetString("http.auth.user.id")
	res.username, _ = repl.GetString("http.auth.user.username")
	return res
}

func TestServeHTTPAnswersLikeDRF(t *testing.T) {
	f := newFixture(t, nil, nil)
	tests := []struct {
		name string
		auth []string
		code int
		body string
	}{
		{"no header", nil, 401, `{"detail":"Authentication credentials were not provided."}`},
		{"other scheme", []string{"Bearer " + f.alice}, 401, `{"detail":"Authentication credentials were not provided."}`},
		{"keyword alone", []string{"Token"}, 401, `{"detail":"Invalid token header. No credentials provided."}`},
		{"three words", []string{"Token " + f.alice + " x"}, 401, `{"detail":"Invalid token header. Token string should not contain spaces."}`},
		{"duplicate headers", []string{"Token " + f.alice, "Token " + f.alice}, 401, `{"detail":"Invalid token header. Token string should not contain spaces."}`},
		{"invalid UTF-8", []string{"Token " + f.alice + "\xb8"}, 401, `{"detail":"Invalid token header. Token string should not contain invalid characters."}`},
		{"unknown key", []string{"Token 0000000000000000000000000000000000000000"}, 401, `{"detail":"Invalid token."}`},
		{"upper-cased key", []string{"Token " + upper(f.alice)}, 401, `{"detail":"Invalid token."}`},
		{"inactive user", []string{"Token " + f.bob}, 401, `{"detail":"User inactive or deleted."}`},
		{"valid token", []string{"Token " + f.alice}, 200, ""},
		{"valid token, lowercase keyword", []string{"token\t" + f.alice}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do(t, tt.auth...)
			if r.code != tt.code || r.body != tt.body {
				t.Fatalf("got %d %s, want %d %s", r.code, r.body, tt.code, tt.body)
			}
			if tt.code == 200 {
				if !r.nextCalled || r.userID != f.aliceID || r.username != "alice" {
					t.Fatalf("next=%v id=%q username=%q", r.nextCalled, r.userID, r.username)
				}
				return
			}
			if r.nextCalled {
				t.Fatal("next handler ran for a refused request")
			}
			if r.challenge != "Token" || r.ctype != "application/json" {
				t.Fatalf("WWW-Authenticate %q, Content-Type %q", r.challenge, r.ctype)
			}
			if r.userID != "" || r.username != "" {
				t.Fatalf("identity set on a refused request: %q %q", r.userID, r.username)
			}
		})
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestOptionalLetsAnonymousThroughButNotBadTokens(t *testing.T) {
	f := newFixture(t, func(h *TokenAuth) { h.Optional = true }, nil)
	if r := f.do(t); r.code != 200 || !r.nextCalled || r.userID != "" {
		t.Fatalf("anonymous: %+v", r)
	}
	if r := f.do(t, "Bearer xyz"); r.code != 200 || !r.nextCalled {
		t.Fatalf("other scheme: %+v", r)
	}
	if r := f.do(t, "Token nope"); r.code != 401 || r.nextCalled || r.body != `{"detail":"Invalid token."}` {
		t.Fatalf("bad token: %+v", r)
	}
	if r := f.do(t, "Token "+f.alice); r.code != 200 || r.username != "alice" {
		t.Fatalf("good token: %+v", r)
	}
}

func TestNoChallengeAnswers403WithoutWWWAuthenticate(t *testing.T) {
	f := newFixture(t, func(h *TokenAuth) { h.NoChallenge = true }, nil)
	r := f.do(t, "Token nope")
	if r.code != 403 || r.challenge != "" || r.body != `{"detail":"Invalid token."}` {
		t.Fatalf("got %+v", r)
	}
	r = f.do(t)
	if r.code != 403 || r.challenge != "" || r.body != `{"detail":"Authentication credentials were not provided."}` {
		t.Fatalf("got %+v", r)
	}
}

func TestCustomKeyword(t *testing.T) {
	f := newFixture(t, func(h *TokenAuth) { h.Keyword = "Bearer" }, nil)
	if r := f.do(t, "bearer "+f.alice); r.code != 200 || r.username != "alice" {
		t.Fatalf("got %+v", r)
	}
	r := f.do(t, "Token "+f.alice)
	if r.code != 401 || r.challenge != "Bearer" || r.body != `{"detail":"Authentication credentials were not provided."}` {
		t.Fatalf("got %+v", r)
	}
}

// A keyword that cannot stand as the first word of an Authorization header
// is refused by Provision itself, with a store that would open (so that the
// refusal is the keyword's).
func TestProvisionRejectsBadKeyword(t *testing.T) {
	path := newFixture(t, nil, nil).path
	for _, kw := range []string{"To ken", "Tök", "Token\t", "Bearer"} {
		h := &TokenAuth{Keyword: kw, StoreRaw: json.RawMessage(`{"kind":"sqlite","path":"` + path + `"}`)}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		h.Cleanup()
		cancel()
		switch {
		case kw == "Bearer" && err != nil:
			t.Errorf("keyword %q refused: %v", kw, err)
		case kw != "Bearer" && (err == nil || !strings.Contains(err.Error(), "keyword")):
			t.Errorf("keyword %q: %v, want an error about the keyword", kw, err)
		}
	}
}

func TestLockedStoreAnswers503WithinTimeout(t *testing.T) {
	f := newFixture(t, nil, map[string]any{"query_timeout": "200ms"})
	// Another process (here: another connection) holds an exclusive lock,
	// as Django does while it commits.
	db, err := sql.Open("sqlite", f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")

	start := time.Now()
	r := f.do(t, "Token "+f.alice)
	elapsed := time.Since(start)
	if r.code != 503 || r.nextCalled || r.retryAfter != "1" || r.body != `{"detail":"Service temporarily unavailable, try again later."}` {
		t.Fatalf("locked store: %+v", r)
	}
	if elapsed > 2*time.Second {
		t.Fatalf("503 took %v with a 200ms query timeout", elapsed)
	}
}

func TestFailingStoreAnswers503(t *testing.T) {
	f := newFixture(t, nil, nil)
	db, err := sql.Open("sqlite", f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DROP TABLE "authtoken_token"`); err != nil {
		t.Fatal(err)
	}
	r := f.do(t, "Token "+f.alice)
	if r.code != 503 || r.nextCalled || r.ctype != "application/json" {
		t.Fatalf("failing store: %+v", r)
	}
}

// BenchmarkServeHTTPStoreLookup measures one authenticated request that
// goes to the SQLite store (no cache).
func BenchmarkServeHTTPStoreLookup(b *testing.B) {
	f := newFixture(b, func(h *TokenAuth) { h.Cache = &Cache{Off: true} }, nil)
	req := httptest.NewRequest(http.MethodGet, "/api/", nil)
	req.Header.Set("Authorization", "Token "+f.alice)
	rec := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rec, nil)
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	b.ReportAllocs()
	for b.Loop() {
		if err := f.h.ServeHTTP(rec, req, next); err != nil {
			b.Fatal(err)
		}
	}
}
