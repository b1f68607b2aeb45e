package tokenauth

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/jackc/pgx/v5"

	"github.com/tokenauth/caddy-tokenauth/password"
	"github.com/tokenauth/caddy-tokenauth/store/sqlite"
)

func TestParseStoreSpec(t *testing.T) {
	tests := []struct {
		spec, want, fail string
	}{
		{"sqlite:/srv/db.sqlite3", `{"kind":"sqlite","path":"/srv/db.sqlite3"}`, ""},
		{"postgres://u:secret@db/app", `{"dsn":"postgres://u:secret@db/app","kind":"postgres"}`, ""},
		{"postgresql://db/app", `{"dsn":"postgresql://db/app","kind":"postgres"}`, ""},
		{"mysql://u:secret@db/app", "", "want sqlite:<path> or postgres://"},
	}
	for _, tt := range tests {
		got, err := parseStoreSpec(tt.spec)
		if tt.fail != "" {
			if err == nil || !strings.Contains(err.Error(), tt.fail) {
				t.Errorf("%q: error %v", tt.spec, err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("%q: the error shows the password: %v", tt.spec, err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%q: got %s, %v", tt.spec, got, err)
		}
	}
}

func TestStoreFromConfig(t *testing.T) {
	handler := func(store string) string {
		if store == "" {
			return `{"handler":"token_auth"}`
		}
		return `{"handler":"token_auth","store":` + store + `}`
	}
	routes := func(handlers ...string) string {
		return `{"apps":{"http":{"servers":{"srv0":{"routes":[{"handle":[` + strings.Join(handlers, ",") + `]}]}}}}}`
	}
	pg := `{"kind":"postgres","dsn":"postgres://db/app"}`
	tests := []struct {
		name, cfg, want, fail string
	}{
		{"no handler", routes(`{"handler":"file_server"}`), "", "no token_auth handler"},
		{"default store", routes(handler("")), `{"kind":"sqlite"}`, ""},
		{"one store twice", routes(handler(pg), handler(pg)), `{"dsn":"postgres://db/app","kind":"postgres"}`, ""},
		{"two stores", routes(handler(pg), handler("")), "", "different stores"},
	}
	for _, tt := range tests {
		got, err := storeFromConfig([]byte(tt.cfg))
		if tt.fail != "" {
			if err == nil || !strings.Contains(err.Error(), tt.fail) {
				t.Errorf("%s: error %v", tt.name, err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: got %s, %v", tt.name, got, err)
		}
	}
}

func TestParseStoreSpecAcceptsKeyValueDSN(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"host=db dbname=app user=django", `{"dsn":"host=db dbname=app user=django","kind":"postgres"}`},
		{"dbname=app", `{"dsn":"dbname=app","kind":"postgres"}`},
		{" host = /run/postgresql dbname=app", `{"dsn":" host = /run/postgresql dbname=app","kind":"postgres"}`},
	}
	for _, tt := range tests {
		got, err := parseStoreSpec(tt.spec)
		if err != nil || string(got) != tt.want {
			t.Errorf("%q: got %s, %v; want %s", tt.spec, got, err, tt.want)
		}
	}
}

func TestParseStoreSpecRefusesAnEmptySQLitePath(t *testing.T) {
	got, err := parseStoreSpec("sqlite:")
	if err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("sqlite: with no path: got %s, %v; want an error saying the path is empty", got, err)
	}
}

// cliResult is what a `caddy token …` run wrote and its exit code.
type cliResult struct {
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// runCLI runs `caddy token <args…>` as the caddy binary does
// (caddycmd.Main), in a child process — this test binary, re-entered
// through TestCLIHelperProcess — so that the test sees all the command
// writes to stdout and stderr, logs included, and its exit code. The child
// has a home and data directory of its own and no PG* variable.
func runCLI(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"-test.run=^TestCLIHelperProcess$", "--"}, args...)...)
	home := t.TempDir()
	env := []string{"TOKENAUTH_CLI_HELPER=1", "HOME=" + home,
		"XDG_DATA_HOME=" + filepath.Join(home, "data"), "XDG_CONFIG_HOME=" + filepath.Join(home, "config")}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PG") || name == "HOME" || strings.HasPrefix(name, "XDG_") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("running caddy token %q: %v", args, err)
	}
	return r
}

// TestCLIHelperProcess is the child of runCLI: `caddy token` with the
// arguments after "--". Run by itself, it does nothing.
func TestCLIHelperProcess(t *testing.T) {
	if os.Getenv("TOKENAUTH_CLI_HELPER") != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Args = append([]string{"caddy", "token"}, args...)
	caddycmd.Main()
	os.Exit(0)
}

// sqliteStore makes a Django database in a fresh file with `caddy token
// migrate` and returns its --store flag and path.
func sqliteStore(t *testing.T) (flag, path string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "db.sqlite3")
	flag = "--store=sqlite:" + path
	if r := runCLI(t, "", "migrate", flag); r.code != 0 {
		t.Fatalf("migrate: %v", r)
	}
	return flag, path
}

// sqliteQuery returns the one value a query of the database at path gives.
func sqliteQuery(t *testing.T, path, query string, args ...any) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow(query, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}

func TestCLINeverPrintsTheStorePassword(t *testing.T) {
	tests := []struct {
		name, spec string
		secret     string // in no output of the command
	}{
		{"url", "postgres://u:S3cret@127.0.0.1:1/db", "S3cret"},
		{"postgresql url", "postgresql://u:S3cret@127.0.0.1:1/db", "S3cret"},
		{"url with a percent-encoded password", "postgres://u:S3%40cret@127.0.0.1:1/db", "S3"},
		{"password in the query", "postgres://u@127.0.0.1:1/db?sslmode=disable&password=S3cret", "S3cret"},
		{"malformed url", "postgres://u:S3cret@127.0.0.1:notaport/db", "S3cret"},
		{"key=value", "host=127.0.0.1 port=1 user=u password=S3cret dbname=db", "S3cret"},
		{"key=value, password first", "password=S3cret host=127.0.0.1 port=1", "S3cret"},
		{"key=value, quoted password", "host=127.0.0.1 port=1 password='S 3cret'", "3cret"},
		{"key=value, malformed", "host=127.0.0.1 port=notaport password=S3cret", "S3cret"},
		{"another scheme", "mysql://u:S3cret@db/app", "S3cret"},
		{"scheme in capitals", "POSTGRES://u:S3cret@127.0.0.1:1/db", "S3cret"},
		{"scheme without slashes", "postgres:/u:S3cret@127.0.0.1:1/db", "S3cret"},
		{"not a spec, with a password", "db password=S3cret", "S3cret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", "list", "--store", tt.spec)
			if r.code == 0 {
				t.Errorf("list succeeded: %v", r)
			}
			if strings.Contains(r.stdout+r.stderr, tt.secret) {
				t.Errorf("the output shows the password %q: %v", tt.secret, r)
			}
		})
	}
}

// pgKeyValue is TOKENAUTH_PG_DSN, a URL, in key=value form, with the
// search_path set to schema.
func pgKeyValue(t *testing.T, dsn, schema string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	quote := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace
	kv := []string{"host='" + quote(u.Hostname()) + "'", "dbname='" + quote(strings.TrimPrefix(u.Path, "/")) + "'"}
	if p := u.Port(); p != "" {
		kv = append(kv, "port="+p)
	}
	if name := u.User.Username(); name != "" {
		kv = append(kv, "user='"+quote(name)+"'")
	}
	if pw, ok := u.User.Password(); ok {
		kv = append(kv, "password='"+quote(pw)+"'")
	}
	for k, vs := range u.Query() {
		kv = append(kv, k+"='"+quote(vs[0])+"'")
	}
	return strings.Join(append(kv, "options='-c search_path="+schema+"'"), " ")
}

func TestCLIUsesAKeyValueDSNAsAPostgresStore(t *testing.T) {
	dsn := os.Getenv("TOKENAUTH_PG_DSN")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TOKENAUTH_PG_DSN is not set (eval \"$(scripts/pg-cluster.sh start <dir>)\")")
		}
		t.Skip("TOKENAUTH_PG_DSN is not set; eval \"$(scripts/pg-cluster.sh start <dir>)\" to run against PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "cli_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	}()

	spec := pgKeyValue(t, dsn, schema)
	if r := runCLI(t, "", "migrate", "--store", spec); r.code != 0 {
		t.Fatalf("migrate --store %q: %v", spec, r)
	}
	r := runCLI(t, "s3cret pass\n", "adduser", "alice", "--password-stdin", "--iterations=100000", "--store", spec)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Generated token ") {
		t.Fatalf("adduser --store %q: %v", spec, r)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+schema+".auth_user WHERE username = 'alice'").Scan(&n); err != nil || n != 1 {
		t.Errorf("alice in %s.auth_user: %d rows, %v", schema, n, err)
	}
}

func TestCLIUnreachablePostgresIsOneErrorLine(t *testing.T) {
	for _, spec := range []string{
		"postgres://u:pw5ecret@127.0.0.1:1/db",
		"host=127.0.0.1 port=1 user=u password=pw5ecret dbname=db",
	} {
		for _, args := range [][]string{{"list"}, {"create", "alice"}, {"migrate"}} {
			r := runCLI(t, "", append(args, "--store", spec)...)
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if r.code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "Error: ") ||
				!strings.Contains(lines[0], "connection refused") {
				t.Errorf("%s --store %q: want exit 1 and one line \"Error: … connection refused\" on stderr, got %v", args[0], spec, r)
			}
			if strings.Contains(r.stdout+r.stderr, "pw5ecret") {
				t.Errorf("%s --store %q: the output shows the password: %v", args[0], spec, r)
			}
		}
	}
}

func TestCLIRefusesAnEmptyStore(t *testing.T) {
	for _, flag := range []string{"--store=sqlite:", "--store=", "--config="} {
		r := runCLI(t, "", "list", flag)
		if r.code != 1 || !strings.Contains(r.stderr, "empty") {
			t.Errorf("list %s: want exit 1 and an error saying it is empty, got %v", flag, r)
		}
	}
}

func TestCLIAddUserRefusesUsernamesDjangoRejects(t *testing.T) {
	const chars = "may contain only letters, numbers, and @/./+/-/_ characters"
	tests := []struct{ name, username, want string }{
		{"newline", "x\ny", chars},
		{"trailing newline", "bob\n", chars},
		{"leading space", " bob", chars},
		{"trailing space", "bob ", chars},
		{"inner space", "bo b", chars},
		{"slash", "a/b", chars},
		{"combining mark", "x\u0301", chars}, // Python's \w has no marks
		{"connector punctuation but _", "a\u203fb", chars},
		{"invalid UTF-8", "b\xffob", chars},
		{"blank", "", "blank"},
		{"300 characters", strings.Repeat("a", 300), "at most 150 characters"},
		{"151 characters", strings.Repeat("é", 151), "at most 150 characters"},
		{"not NFKC", "ｂｏｂ", "NFKC"},
	}
	flag, path := sqliteStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "s3cret pass\n", "adduser", tt.username, "--password-stdin", "--iterations=100000", flag)
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("adduser %q: want exit 1 and an error saying %q, got %v", tt.username, tt.want, r)
			}
		})
	}
	if n := sqliteQuery(t, path, "SELECT count(*) FROM auth_user"); n != "0" {
		t.Errorf("auth_user has %s rows after refused adduser, want 0", n)
	}

	accepted := []string{"Zoë", "josé.d@x+y-z_1", strings.Repeat("é", 150), "用户", "٣٤"}
	for _, username := range accepted {
		r := runCLI(t, "s3cret pass\n", "adduser", username, "--password-stdin", "--iterations=100000", flag)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Generated token ") {
			t.Errorf("adduser %q: %v", username, r)
		}
	}
	if n := sqliteQuery(t, path, "SELECT count(*) FROM auth_user"); n != strconv.Itoa(len(accepted)) {
		t.Errorf("auth_user has %s rows, want %d", n, len(accepted))
	}
}

func TestCLIRefusesIterationsOutsideTheLoginsRange(t *testing.T) {
	flag, path := sqliteStore(t)
	if r := runCLI(t, "first pass\n", "adduser", "alice", "--password-stdin", "--iterations=100000", flag); r.code != 0 {
		t.Fatalf("adduser alice: %v", r)
	}
	before := sqliteQuery(t, path, "SELECT password FROM auth_user WHERE username = 'alice'")
	for _, n := range []string{"1", "0", "-1", "99999", "10000001", "2147483648"} {
		for _, args := range [][]string{{"adduser", "bob"}, {"passwd", "alice"}} {
			r := runCLI(t, "s3cret pass\n", append(args, "--password-stdin", "--iterations="+n, flag)...)
			if r.code != 1 || !strings.Contains(r.stderr, "--iterations") || !strings.Contains(r.stderr, "100000") {
				t.Errorf("%s --iterations=%s: want exit 1 and an error naming the range, got %v", args[0], n, r)
			}
		}
	}
	if n := sqliteQuery(t, path, "SELECT count(*) FROM auth_user WHERE username = 'bob'"); n != "0" {
		t.Errorf("bob was added")
	}
	if after := sqliteQuery(t, path, "SELECT password FROM auth_user WHERE username = 'alice'"); after != before {
		t.Errorf("alice's password changed: %s, was %s", after, before)
	}

	passwdLogsIn(t, flag, path, 100_000)
}

// TestCLIPasswordsAtTheMostIterationsLogIn checks the other end of the
// range: 10,000,000 iterations, twice (set, then checked), take seconds,
// and a minute and more under the race detector.
func TestCLIPasswordsAtTheMostIterationsLogIn(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000,000 PBKDF2 iterations")
	}
	flag, path := sqliteStore(t)
	if r := runCLI(t, "first pass\n", "adduser", "alice", "--password-stdin", "--iterations=100000", flag); r.code != 0 {
		t.Fatalf("adduser alice: %v", r)
	}
	passwdLogsIn(t, flag, path, 10_000_000)
}

// passwdLogsIn sets alice's password with n iterations and checks that it
// logs in.
func passwdLogsIn(t *testing.T, flag, path string, n int) {
	t.Helper()
	r := runCLI(t, "s3cret pass\n", "passwd", "alice", "--password-stdin", "--iterations="+strconv.Itoa(n), flag)
	if r.code != 0 {
		t.Fatalf("passwd --iterations=%d: %v", n, r)
	}
	encoded := sqliteQuery(t, path, "SELECT password FROM auth_user WHERE username = 'alice'")
	if !strings.HasPrefix(encoded, "pbkdf2_sha256$"+strconv.Itoa(n)+"$") {
		t.Errorf("passwd --iterations=%d stored %s", n, encoded)
	}
	if ok, _ := password.Check("s3cret pass", encoded); !ok {
		t.Errorf("passwd --iterations=%d: the password does not log in", n)
	}
}

// tokenLine is the line create and adduser print, with the key.
var tokenLine = regexp.MustCompile(`^Generated token ([0-9a-f]{40}) for user (.+)\n$`)

// addUser runs adduser with a password on stdin and 100,000 iterations
// (the fewest the command takes, the fastest to hash) plus args, and
// returns the new user's key.
func addUser(t *testing.T, flag, username, pass string, args ...string) string {
	t.Helper()
	r := runCLI(t, pass+"\n", append([]string{"adduser", username, "--password-stdin", "--iterations=100000", flag}, args...)...)
	m := tokenLine.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || m[2] != username {
		t.Fatalf("adduser %s: %v", username, r)
	}
	return m[1]
}

// djangoPBKDF2 is a value Django's PBKDF2PasswordHasher makes and reads:
// pbkdf2_sha256$<iterations>$<salt: 22 of [A-Za-z0-9], as
// get_random_string gives 128 bits>$<32 bytes, standard base64>.
var djangoPBKDF2 = regexp.MustCompile(`^pbkdf2_sha256\$([1-9][0-9]*)\$[A-Za-z0-9]{22}\$[A-Za-z0-9+/]{43}=$`)

// passwordOf is the auth_user.password of username.
func passwordOf(t *testing.T, path, username string) string {
	t.Helper()
	return sqliteQuery(t, path, "SELECT password FROM auth_user WHERE username = ?", username)
}

// answerTo is what a token_auth handler over the SQLite database at path
// answers a request with key.
func answerTo(t *testing.T, path, key string) result {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"kind": "sqlite", "path": path})
	f := &fixture{h: &TokenAuth{StoreRaw: raw}, path: path}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := f.h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.h.Cleanup()
	return f.do(t, "Token "+key)
}

func TestCLIPasswdSetsADjangoPassword(t *testing.T) {
	flag, path := sqliteStore(t)
	key := addUser(t, flag, "alice", "first pass")
	addUser(t, flag, "bob", "bob pass")
	bobBefore := passwordOf(t, path, "bob")

	r := runCLI(t, "second pass\n", "passwd", "alice", "--password-stdin", "--iterations=120000", flag)
	if r.code != 0 || r.stdout != "Password changed successfully for user 'alice'\n" || r.stderr != "" {
		t.Fatalf("passwd alice: want exit 0 and Django's changepassword line, got %v", r)
	}
	encoded := passwordOf(t, path, "alice")
	if m := djangoPBKDF2.FindStringSubmatch(encoded); m == nil || m[1] != "120000" {
		t.Errorf("passwd --iterations=120000 stored %q, want Django's pbkdf2_sha256$120000$<salt>$<hash>", encoded)
	}
	if ok, _ := password.Check("second pass", encoded); !ok {
		t.Error("the new password does not log in")
	}
	if ok, _ := password.Check("first pass", encoded); ok {
		t.Error("the old password still logs in")
	}
	if after := passwordOf(t, path, "bob"); after != bobBefore {
		t.Errorf("passwd alice changed bob's password: %s, was %s", after, bobBefore)
	}
	// As Django's changepassword, passwd leaves the token alone.
	if got := sqliteQuery(t, path, "SELECT key FROM authtoken_token JOIN auth_user ON auth_user.id = user_id WHERE username = 'alice'"); got != key {
		t.Errorf("alice's token is %s after passwd, was %s", got, key)
	}
}

func TestCLIPasswdRefusesAnUnknownUser(t *testing.T) {
	flag, path := sqliteStore(t)
	addUser(t, flag, "alice", "first pass")
	r := runCLI(t, "second pass\n", "passwd", "nobody", "--password-stdin", "--iterations=100000", flag)
	if r.code != 1 || r.stdout != "" || r.stderr != "Error: user nobody: user does not exist\n" {
		t.Errorf("passwd nobody: want exit 1 and \"Error: user nobody: user does not exist\", got %v", r)
	}
	if n := sqliteQuery(t, path, "SELECT count(*) FROM auth_user"); n != "1" {
		t.Errorf("auth_user has %s rows after passwd of an unknown user, want 1", n)
	}
}

func TestCLIAddUserInactiveMakesAnInactiveUser(t *testing.T) {
	flag, path := sqliteStore(t)
	alice := addUser(t, flag, "alice", "alice pass")
	bob := addUser(t, flag, "bob", "bob pass", "--inactive")
	for user, want := range map[string]string{"alice": "1", "bob": "0"} {
		if got := sqliteQuery(t, path, "SELECT is_active FROM auth_user WHERE username = ?", user); got != want {
			t.Errorf("%s: is_active %s, want %s", user, got, want)
		}
	}
	// The inactive user has a token (drf_create_token makes one for any
	// user), and DRF refuses it.
	if r := answerTo(t, path, bob); r.code != 401 || r.body != `{"detail":"User inactive or deleted."}` || r.nextCalled {
		t.Errorf("bob's token (adduser --inactive): %d %s, next called %v; want 401 {\"detail\":\"User inactive or deleted.\"}", r.code, r.body, r.nextCalled)
	}
	if r := answerTo(t, path, alice); r.code != 200 || !r.nextCalled || r.username != "alice" {
		t.Errorf("alice's token: %d %s, next called %v, username %q; want it let through as alice", r.code, r.body, r.nextCalled, r.username)
	}
}

func TestCLIStoresTheIterationsInTheHash(t *testing.T) {
	flag, path := sqliteStore(t)
	r := runCLI(t, "carol pass\n", "adduser", "carol", "--password-stdin", "--iterations=150000", flag)
	if r.code != 0 {
		t.Fatalf("adduser carol --iterations=150000: %v", r)
	}
	encoded := passwordOf(t, path, "carol")
	if m := djangoPBKDF2.FindStringSubmatch(encoded); m == nil || m[1] != "150000" {
		t.Errorf("adduser --iterations=150000 stored %q, want pbkdf2_sha256$150000$<salt>$<hash>", encoded)
	}
	if ok, _ := password.Check("carol pass", encoded); !ok {
		t.Error("adduser --iterations=150000: the password does not log in")
	}
	// Without the flag: Django 5.2's default, 1,000,000.
	if r := runCLI(t, "dave pass\n", "adduser", "dave", "--password-stdin", flag); r.code != 0 {
		t.Fatalf("adduser dave: %v", r)
	}
	if m := djangoPBKDF2.FindStringSubmatch(passwordOf(t, path, "dave")); m == nil || m[1] != "1000000" {
		t.Errorf("adduser without --iterations stored %q, want pbkdf2_sha256$1000000$…", passwordOf(t, path, "dave"))
	}
}

func TestCLIDeleteToken(t *testing.T) {
	flag, path := sqliteStore(t)
	addUser(t, flag, "alice", "alice pass")
	bob := addUser(t, flag, "bob", "bob pass")
	tokensOf := func(user string) string {
		return sqliteQuery(t, path, "SELECT count(*) FROM authtoken_token JOIN auth_user ON auth_user.id = user_id WHERE username = ?", user)
	}

	r := runCLI(t, "", "delete", "alice", flag)
	if r.code != 0 || r.stdout != "Deleted token for user alice\n" || r.stderr != "" {
		t.Errorf("delete alice: %v", r)
	}
	if n := tokensOf("alice"); n != "0" {
		t.Errorf("alice has %s tokens after delete", n)
	}
	if n := tokensOf("bob"); n != "1" {
		t.Errorf("delete alice left bob %s tokens, want 1", n)
	}
	if r := answerTo(t, path, bob); r.code != 200 {
		t.Errorf("bob's token after delete alice: %d %s", r.code, r.body)
	}

	// A user without a token: nothing to do, which is not a failure (a
	// script may delete a token twice), and says so.
	r = runCLI(t, "", "delete", "alice", flag)
	if r.code != 0 || r.stdout != "User alice has no token\n" || r.stderr != "" {
		t.Errorf("delete alice again: want exit 0 and \"User alice has no token\", got %v", r)
	}
	if n := sqliteQuery(t, path, "SELECT count(*) FROM auth_user WHERE username = 'alice'"); n != "1" {
		t.Errorf("delete removed the user alice")
	}

	// A user who does not exist is an error.
	r = runCLI(t, "", "delete", "nobody", flag)
	if r.code != 1 || r.stdout != "" || r.stderr != "Error: user nobody: user does not exist\n" {
		t.Errorf("delete nobody: want exit 1 and \"Error: user nobody: user does not exist\", got %v", r)
	}
	if n := tokensOf("bob"); n != "1" {
		t.Errorf("bob has %s tokens after the deletes, want 1", n)
	}
}

func TestCLIMigrateMakesDjangosTables(t *testing.T) {
	for _, empty := range []bool{true, false} {
		name := map[bool]string{true: "an empty file", false: "no file"}[empty]
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db.sqlite3")
			if empty {
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			flag := "--store=sqlite:" + path
			r := runCLI(t, "", "migrate", flag)
			if r.code != 0 || r.stdout != migratedTables+"\n" || r.stderr != "" {
				t.Fatalf("migrate on %s: %v", name, r)
			}
			if got := sqliteQuery(t, path, "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name)"); got != "auth_group auth_group_permissions auth_permission auth_user auth_user_groups auth_user_user_permissions authtoken_token django_content_type sqlite_sequence" {
				t.Errorf("tables after migrate: %s, want auth_user, authtoken_token and the six of groups and permissions (and SQLite's sqlite_sequence)", got)
			}
			for _, ddl := range append(append([]string{}, sqlite.Schema...), sqlite.PermissionsSchema...) {
				if n := sqliteQuery(t, path, "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'index') AND sql = ?", ddl); n != "1" {
					t.Errorf("no table made by Django's DDL %s", ddl)
				}
			}
			key := addUser(t, flag, "alice", "alice pass")

			// Again, on the tables it made: nothing changes.
			if r := runCLI(t, "", "migrate", flag); r.code != 0 || r.stdout != migratedTables+"\n" {
				t.Errorf("migrate again: %v", r)
			}
			if got := sqliteQuery(t, path, "SELECT key FROM authtoken_token"); got != key {
				t.Errorf("alice's token after migrate again: %s, want %s", got, key)
			}
		})
	}
}

func TestCLIMigrateNotifyIsAnErrorOnSQLite(t *testing.T) {
	const want = "Error: --notify: only a postgres store has triggers (a sqlite store notices changes by itself)\n"
	path := filepath.Join(t.TempDir(), "db.sqlite3")
	r := runCLI(t, "", "migrate", "--notify", "--store=sqlite:"+path)
	if r.code != 1 || r.stdout != "" || r.stderr != want {
		t.Errorf("migrate --notify on sqlite: want exit 1 and %q, got %v", want, r)
	}
	// Refused before the store is opened: no file, no tables.
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("migrate --notify on sqlite left a file at the path (%v)", err)
	}
	// The same for the embedded store, a sqlite one.
	if r := runCLI(t, "", "migrate", "--notify"); r.code != 1 || r.stderr != want {
		t.Errorf("migrate --notify on the embedded store: want exit 1 and %q, got %v", want, r)
	}
}

func TestCLIListShowsKeysOnlyWithShowKeys(t *testing.T) {
	flag, path := sqliteStore(t)
	keys := map[string]string{"alice": addUser(t, flag, "alice", "alice pass"), "bob": addUser(t, flag, "bob", "bob pass")}
	addUser(t, flag, "carol", "carol pass")
	if r := runCLI(t, "", "delete", "carol", flag); r.code != 0 {
		t.Fatalf("delete carol: %v", r)
	}
	created := func(user string) string {
		return sqliteQuery(t, path, "SELECT substr(CAST(created AS TEXT), 1, 19) || 'Z' FROM authtoken_token JOIN auth_user ON auth_user.id = user_id WHERE username = ?", user)
	}
	anyKey := regexp.MustCompile(`[0-9a-f]{40}`)

	for _, show := range []bool{false, true} {
		args := []string{"list", flag}
		header := []string{"USERNAME", "CREATED"}
		if show {
			args = append(args, "--show-keys")
			header = append(header, "KEY")
		}
		r := runCLI(t, "", args...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("%s: %v", strings.Join(args, " "), r)
		}
		if !show && anyKey.MatchString(r.stdout) {
			t.Errorf("list without --show-keys prints a key: %q", r.stdout)
		}
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("%s: want a header and the two users with tokens (alice, bob), got %q", strings.Join(args, " "), r.stdout)
		}
		if got := strings.Fields(lines[0]); !slices.Equal(got, header) {
			t.Errorf("%s: header %q, want %q", strings.Join(args, " "), got, header)
		}
		for i, user := range []string{"alice", "bob"} {
			want := append([]string{user}, strings.Fields(created(user))...)
			if show {
				want = append(want, keys[user])
			}
			if got := strings.Fields(lines[i+1]); !slices.Equal(got, want) {
				t.Errorf("%s: line %q, want the fields %q", strings.Join(args, " "), lines[i+1], want)
			}
		}
	}
}
