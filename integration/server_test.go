package integration

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/tokenauth/caddy-tokenauth/store"
	"github.com/tokenauth/caddy-tokenauth/store/sqlite"
	_ "modernc.org/sqlite"
)

const globalOptions = `{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
}
`

// site is a Django-like database with an active user (alice), an inactive
// one (bob) and their tokens.
type site struct {
	dbPath     string
	alice, bob string
	aliceID    string
}

func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{dbPath: filepath.Join(t.TempDir(), "db.sqlite3")}
	db, err := sql.Open("sqlite", s.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, ddl := range sqlite.Schema {
		if _, err := db.Exec(ddl); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []struct {
		name   string
		active int
		key    *string
	}{{"alice", 1, &s.alice}, {"bob", 0, &s.bob}} {
		res, err := db.Exec(`INSERT INTO auth_user (password, is_superuser, username, last_name, email, is_staff, is_active, date_joined, first_name) VALUES ('!', 0, ?, '', '', 0, ?, '2026-01-01 00:00:00', '')`, u.name, u.active)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := res.LastInsertId()
		*u.key = store.GenerateKey()
		if _, err := db.Exec(`INSERT INTO authtoken_token (key, created, user_id) VALUES (?, '2026-01-01 00:00:00', ?)`, *u.key, id); err != nil {
			t.Fatal(err)
		}
		if u.name == "alice" {
			s.aliceID = fmt.Sprint(id)
		}
	}
	return s
}

// echoUpstream answers with the identity headers it received, as JSON.
func echoUpstream(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"path":    r.URL.Path,
			"user":    r.Header.Values("X-Remote-User"),
			"user_id": r.Header.Values("X-Remote-User-Id"),
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, tc *caddytest.Tester, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://localhost:9080"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := tc.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestProtectedOptionalAndOpenRoutes(t *testing.T) {
	s := newSite(t)
	up := echoUpstream(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "files", "secret.txt"), []byte("the secret file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	upstream := strings.TrimPrefix(up.URL, "http://")
	tc := caddytest.NewTester(t)
	tc.InitServer(globalOptions+fmt.Sprintf(`
http://localhost:9080 {
	token_auth /api/* {
		store sqlite %[1]s
	}
	token_auth /files/* {
		store sqlite %[1]s
	}
	token_auth /public/* {
		store sqlite %[1]s
		optional
	}
	handle /api/* {
		reverse_proxy %[2]s {
			header_up X-Remote-User {http.auth.user.username}
			header_up X-Remote-User-Id {http.auth.user.id}
		}
	}
	handle /public/* {
		reverse_proxy %[2]s {
			header_up X-Remote-User {http.auth.user.username}
		}
	}
	handle /files/* {
		root * %[3]s
		file_server
	}
	handle {
		respond "open to all"
	}
}
`, s.dbPath, upstream, root), "caddyfile")

	good := "Token " + s.alice

	t.Run("proxied app receives the identity", func(t *testing.T) {
		resp, body := get(t, tc, "/api/items", "Authorization", good, "X-Remote-User", "admin", "X-Remote-User-Id", "1")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		var got struct {
			User   []string `json:"user"`
			UserID []string `json:"user_id"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		if strings.Join(got.User, ",") != "alice" || strings.Join(got.UserID, ",") != s.aliceID {
			t.Fatalf("upstream saw user %q id %q, want alice %s", got.User, got.UserID, s.aliceID)
		}
	})

	t.Run("proxied app is refused without a token", func(t *testing.T) {
		resp, body := get(t, tc, "/api/items", "X-Remote-User", "alice")
		assertDRF(t, resp, body, 401, `{"detail":"Authentication credentials were not provided."}`)
	})

	t.Run("proxied app is refused for an inactive user", func(t *testing.T) {
		resp, body := get(t, tc, "/api/items", "Authorization", "Token "+s.bob)
		assertDRF(t, resp, body, 401, `{"detail":"User inactive or deleted."}`)
	})

	t.Run("file_server serves only with a valid token", func(t *testing.T) {
		resp, body := get(t, tc, "/files/secret.txt", "Authorization", good)
		if resp.StatusCode != 200 || body != "the secret file\n" {
			t.Fatalf("with token: %d %q", resp.StatusCode, body)
		}
		resp, body = get(t, tc, "/files/secret.txt")
		assertDRF(t, resp, body, 401, `{"detail":"Authentication credentials were not provided."}`)
		resp, body = get(t, tc, "/files/secret.txt", "Authorization", "Token 0123456789012345678901234567890123456789")
		assertDRF(t, resp, body, 401, `{"detail":"Invalid token."}`)
	})

	t.Run("optional route lets anonymous through without an identity", func(t *testing.T) {
		resp, body := get(t, tc, "/public/page", "X-Remote-User", "admin")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		var got struct {
			User []string `json:"user"`
		}
		_ = json.Unmarshal([]byte(body), &got)
		if strings.Join(got.User, "") != "" {
			t.Fatalf("anonymous request reached the upstream as %q", got.User)
		}
	})

	t.Run("optional route refuses a bad token", func(t *testing.T) {
		resp, body := get(t, tc, "/public/page", "Authorization", "Token nope")
		assertDRF(t, resp, body, 401, `{"detail":"Invalid token."}`)
		resp, body = get(t, tc, "/public/page", "Authorization", "Token")
		assertDRF(t, resp, body, 401, `{"detail":"Invalid token header. No credentials provided."}`)
	})

	t.Run("optional route passes the identity of a good token", func(t *testing.T) {
		_, body := get(t, tc, "/public/page", "Authorization", good)
		if !strings.Contains(body, `"user":["alice"]`) {
			t.Fatalf("body %s", body)
		}
	})

	t.Run("routes outside the matchers are untouched", func(t *testing.T) {
		for _, h := range [][]string{nil, {"Authorization", "Token nope"}, {"Authorization", "Token"}} {
			resp, body := get(t, tc, "/elsewhere", h...)
			if resp.StatusCode != 200 || body != "open to all" {
				t.Fatalf("headers %q: %d %q", h, resp.StatusCode, body)
			}
		}
	})
}

func assertDRF(t *testing.T, resp *http.Response, body string, code int, want string) {
	t.Helper()
	if resp.StatusCode != code || body != want {
		t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, code, want)
	}
	if got := resp.Header.Get("WWW-Authenticate"); got != "Token" {
		t.Errorf("WWW-Authenticate %q, want Token", got)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q, want application/json", got)
	}
}

func TestAccessLogShowsUserID(t *testing.T) {
	s := newSite(t)
	logFile := filepath.Join(t.TempDir(), "access.log")
	tc := caddytest.NewTester(t)
	tc.InitServer(globalOptions+fmt.Sprintf(`
http://localhost:9080 {
	log {
		output file %s
		format json
	}
	token_auth {
		store sqlite %s
	}
	respond "ok"
}
`, logFile, s.dbPath), "caddyfile")
	resp, _ := get(t, tc, "/", "Authorization", "Token "+s.alice)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Load another config so that the log file is flushed and closed.
	tc.InitServer(globalOptions+"http://localhost:9080 {\n\trespond ok\n}\n", "caddyfile")
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var entry struct {
		UserID  string `json:"user_id"`
		Request struct {
			Headers map[string][]string `json:"headers"`
		} `json:"request"`
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	if err := json.Unmarshal([]byte(line), &entry); err != nil {
		t.Fatalf("log line %q: %v", line, err)
	}
	if entry.UserID != s.aliceID {
		t.Fatalf("access log user_id %q, want %s", entry.UserID, s.aliceID)
	}
	if strings.Contains(string(data), s.alice) {
		t.Fatal("the access log contains the key")
	}
}

func TestBadStoreStopsCaddyFromStarting(t *testing.T) {
	tc := caddytest.NewTester(t)
	tc.InitServer(globalOptions+"http://localhost:9080 {\n\trespond ok\n}\n", "caddyfile")
	dir := t.TempDir()
	notSQLite := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notSQLite, []byte("this is not a database, just some text that is long enough to have a header\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unreadable := filepath.Join(dir, "locked.sqlite3")
	if err := os.WriteFile(unreadable, nil, 0o000); err != nil {
		t.Fatal(err)
	}
	noTables := filepath.Join(dir, "empty.sqlite3")
	if db, err := sql.Open("sqlite", noTables); err == nil {
		_, _ = db.Exec("CREATE TABLE other (x)")
		db.Close()
	}
	missing := filepath.Join(dir, "missing.sqlite3")
	tests := []struct {
		name, path string
		want       []string
	}{
		{"missing file", missing, []string{missing, "no such file"}},
		{"not an SQLite file", notSQLite, []string{notSQLite, "not a database"}},
		{"no Django tables", noTables, []string{noTables, "no table auth_user"}},
		{"a directory", dir, []string{dir, "is a directory"}},
	}
	if os.Geteuid() != 0 { // root reads any file
		tests = append(tests, struct {
			name, path string
			want       []string
		}{"unreadable file", unreadable, []string{unreadable, "permission denied"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := globalOptions + fmt.Sprintf("http://localhost:9080 {\n\ttoken_auth {\n\t\tstore sqlite %s\n\t}\n\trespond ok\n}\n", tt.path)
			err := loadConfig(cfg)
			if err == nil {
				t.Fatal("config with a bad store loaded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("provisioning created the missing file")
	}
	// The running config is untouched by the failed loads.
	tc.AssertGetResponse("http://localhost:9080/", 200, "ok")
}

// loadConfig loads a Caddyfile through the admin API of the caddytest
// server and returns the error Caddy reports.
func loadConfig(cfg string) error {
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://localhost:2999/load", strings.NewReader(cfg))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%d: %s", resp.StatusCode, body)
	}
	return nil
}
