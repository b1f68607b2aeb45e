package integration

// Compatibility with the real Django and DRF: tokens made by Django work in
// Caddy, users and tokens made by `caddy token` work in Django, and Caddy
// answers every Authorization header as DRF does. Django runs as
// /usr/bin/python3 with the project in ./django (see django/drfcheck.py).
// Every test runs once per store: on a Django db.sqlite3 ("sqlite") and on
// a Django database in PostgreSQL ("postgres", a database of the test's own
// in the cluster of TOKENAUTH_PG_DSN), with the same expectations.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // reads sqlite_master
)

// djangoPython is Debian's interpreter, which has Django and DRF installed.
const djangoPython = "/usr/bin/python3"

// djangoRequire skips (or, under CI=true, fails) the test when
// /usr/bin/python3 cannot import Django and DRF.
func djangoRequire(t *testing.T) {
	t.Helper()
	out, err := exec.Command(djangoPython, "-c", "import django, rest_framework").CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	requireOrSkip(t, djangoPython+" with django and rest_framework", err)
}

// djangoDir is the Django project's directory.
func djangoDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("django")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// djangoStores are the kinds of Django database every test runs on.
var djangoStores = []string{"sqlite", "postgres"}

// djangoEachStore runs f as a subtest per store kind.
func djangoEachStore(t *testing.T, f func(t *testing.T, kind string)) {
	t.Helper()
	for _, kind := range djangoStores {
		t.Run(kind, func(t *testing.T) { f(t, kind) })
	}
}

// djangoDB is one Django database: a db.sqlite3 file, or a PostgreSQL
// database.
type djangoDB struct {
	kind string // "sqlite" or "postgres"
	path string // the file, for sqlite
	name string // the database, for postgres
	dsn  string // its postgres:// URL, for postgres
}

// storeFlag is the `caddy token --store` value for the database.
func (db djangoDB) storeFlag() string {
	if db.kind == "postgres" {
		return "--store=" + db.dsn
	}
	return "--store=sqlite:" + db.path
}

// storeLine is the token_auth store line of a Caddyfile for the database.
func (db djangoDB) storeLine() string {
	if db.kind == "postgres" {
		return fmt.Sprintf("store postgres %q", db.dsn)
	}
	return fmt.Sprintf("store sqlite %q", db.path)
}

// djangoEnv is the environment for Django commands on db: any
// DATABASE_URL or TOKENAUTH_DJANGO_DB of the caller is dropped so it cannot
// redirect them.
func djangoEnv(db djangoDB) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "DJANGO_SETTINGS_MODULE=") &&
			!strings.HasPrefix(kv, "TOKENAUTH_DJANGO_DB=") {
			env = append(env, kv)
		}
	}
	if db.kind == "postgres" {
		env = append(env, "DATABASE_URL="+db.dsn)
	} else {
		env = append(env, "TOKENAUTH_DJANGO_DB="+db.path)
	}
	return append(env, "PYTHONDONTWRITEBYTECODE=1", "DJANGO_SETTINGS_MODULE=tokenauth_site.settings")
}

// djangoRun runs a python script of the project with stdin and returns its
// stdout; any failure fails the test.
func djangoRun(t *testing.T, db djangoDB, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(djangoPython, args...)
	cmd.Dir = djangoDir(t)
	cmd.Env = djangoEnv(db)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python3 %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}

// djangoManage runs manage.py.
func djangoManage(t *testing.T, db djangoDB, args ...string) string {
	t.Helper()
	return string(djangoRun(t, db, nil, append([]string{"manage.py"}, args...)...))
}

// djangoCheck runs drfcheck.py <command> with in as JSON and decodes its
// JSON answer into out.
func djangoCheck(t *testing.T, db djangoDB, command string, in, out any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	res := djangoRun(t, db, b, "drfcheck.py", command)
	if err := json.Unmarshal(res, out); err != nil {
		t.Fatalf("drfcheck.py %s: %v in %s", command, err, res)
	}
}

// djangoNewDB makes a fresh Django database of the kind, a db.sqlite3 or
// a PostgreSQL database of the test's own, with `manage.py migrate`.
func djangoNewDB(t *testing.T, kind string) djangoDB {
	t.Helper()
	db := djangoDB{kind: kind}
	switch kind {
	case "sqlite":
		db.path = filepath.Join(t.TempDir(), "db.sqlite3")
	case "postgres":
		db.name, db.dsn = pgFreshDatabase(t, pgDSN(t))
	default:
		t.Fatalf("unknown store kind %q", kind)
	}
	djangoManage(t, db, "migrate", "--no-input", "-v", "0")
	return db
}

type djangoUser struct {
	Username string `json:"username"`
	Password string `json:"password,omitempty"`
	Active   bool   `json:"active"`
	ID       int64  `json:"id,omitempty"`
}

// djangoCreateUsers creates users with the ORM and returns their ids.
func djangoCreateUsers(t *testing.T, db djangoDB, users ...djangoUser) map[string]int64 {
	t.Helper()
	var created []djangoUser
	djangoCheck(t, db, "createusers", map[string]any{"users": users}, &created)
	ids := make(map[string]int64)
	for _, u := range created {
		ids[u.Username] = u.ID
	}
	return ids
}

var djangoGeneratedRE = regexp.MustCompile(`^Generated token (\S+) for user (\S+)\n$`)

// djangoCreateToken runs `manage.py drf_create_token` and returns the key.
func djangoCreateToken(t *testing.T, db djangoDB, username string) string {
	t.Helper()
	out := djangoManage(t, db, "drf_create_token", username)
	m := djangoGeneratedRE.FindStringSubmatch(out)
	if m == nil || m[2] != username {
		t.Fatalf("drf_create_token %s: unexpected output %q", username, out)
	}
	return m[1]
}

// djangoAuthenticate asks django.contrib.auth.authenticate about a password.
func djangoAuthenticate(t *testing.T, db djangoDB, username, password string) (ok bool, id int64) {
	t.Helper()
	var res struct {
		OK bool   `json:"ok"`
		ID *int64 `json:"id"`
	}
	djangoCheck(t, db, "authenticate", map[string]string{"username": username, "password": password}, &res)
	if res.ID != nil {
		id = *res.ID
	}
	return res.OK, id
}

// djangoResponse is one answer, from DRF or from Caddy.
type djangoResponse struct {
	Status          int     `json:"status"`
	Body            []byte  `json:"body"` // base64 in drfcheck's JSON
	WWWAuthenticate *string `json:"www_authenticate"`
	ContentType     *string `json:"content_type"`
}

func (r djangoResponse) String() string {
	deref := func(p *string) string {
		if p == nil {
			return "(none)"
		}
		return fmt.Sprintf("%q", *p)
	}
	return fmt.Sprintf("%d body=%q WWW-Authenticate=%s Content-Type=%s",
		r.Status, r.Body, deref(r.WWWAuthenticate), deref(r.ContentType))
}

// djangoDRFRequests sends GET /whoami/ through DRF once per entry of reqs,
// each being the raw values of that request's Authorization header lines.
func djangoDRFRequests(t *testing.T, db djangoDB, reqs [][]string) []djangoResponse {
	t.Helper()
	enc := make([][]string, len(reqs))
	for i, values := range reqs {
		enc[i] = []string{}
		for _, v := range values {
			enc[i] = append(enc[i], base64.StdEncoding.EncodeToString([]byte(v)))
		}
	}
	var res []djangoResponse
	djangoCheck(t, db, "requests", map[string]any{"requests": enc}, &res)
	if len(res) != len(reqs) {
		t.Fatalf("drfcheck.py requests: %d answers for %d requests", len(res), len(reqs))
	}
	return res
}

// djangoRawRequest sends GET / to the Caddy test site as raw bytes, one
// "Authorization:" line per value, so that no Go client normalises them.
func djangoRawRequest(t *testing.T, values []string) djangoResponse {
	t.Helper()
	conn, err := net.DialTimeout("tcp", "127.0.0.1:9080", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b bytes.Buffer
	b.WriteString("GET / HTTP/1.1\r\nHost: localhost:9080\r\n")
	for _, v := range values {
		b.WriteString("Authorization: " + v + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading Caddy's response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := djangoResponse{Status: resp.StatusCode, Body: body}
	if v, ok := resp.Header["Www-Authenticate"]; ok {
		s := strings.Join(v, ", ")
		r.WWWAuthenticate = &s
	}
	if v, ok := resp.Header["Content-Type"]; ok {
		s := strings.Join(v, ", ")
		r.ContentType = &s
	}
	return r
}

// djangoSchema is everything in the database that a schema change would
// alter.
func djangoSchema(t *testing.T, db djangoDB) string {
	t.Helper()
	if db.kind == "postgres" {
		return djangoPGSchema(t, db)
	}
	conn, err := sql.Open("sqlite", "file:"+db.path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	rows, err := conn.Query(`SELECT type, name, tbl_name, rootpage, coalesce(sql, '') FROM sqlite_master ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ, name, tbl, ddl string
		var root int64
		if err := rows.Scan(&typ, &name, &tbl, &root, &ddl); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s %s %d %s\n", typ, name, tbl, root, ddl)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, pragma := range []string{"journal_mode", "user_version", "application_id"} {
		var v string
		if err := conn.QueryRow("PRAGMA " + pragma).Scan(&v); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "PRAGMA %s = %s\n", pragma, v)
	}
	return b.String()
}

// djangoPGSchema is djangoSchema for PostgreSQL: the schemas, every
// relation (with its oid and file node, which a drop, re-create or rewrite
// changes), column, constraint and index outside the system schemas.
func djangoPGSchema(t *testing.T, db djangoDB) string {
	t.Helper()
	ctx := context.Background()
	conn := pgConnect(t, db.dsn)
	var b strings.Builder
	for _, q := range []string{
		`SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema' ORDER BY 1`,
		`SELECT 'relation ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text || ' ' || c.oid || ' ' || c.relfilenode
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema' ORDER BY 1`,
		`SELECT 'column ' || table_schema || '.' || table_name || '.' || column_name || ' ' || data_type || ' ' ||
				coalesce(character_maximum_length::text, '') || ' ' || is_nullable || ' ' || coalesce(column_default, '') || ' ' || is_identity
			FROM information_schema.columns WHERE table_schema NOT LIKE 'pg\_%' AND table_schema <> 'information_schema' ORDER BY 1`,
		`SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(c.oid)
			FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
			WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema' ORDER BY 1`,
		`SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname NOT LIKE 'pg\_%' AND schemaname <> 'information_schema' ORDER BY 1`,
	} {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// djangoStartCaddy serves http://localhost:9080 with token_auth on db,
// echoing the authenticated user.
func djangoStartCaddy(t *testing.T, db djangoDB) {
	t.Helper()
	tc := caddytest.NewTester(t)
	tc.InitServer(globalOptions+fmt.Sprintf(`
http://localhost:9080 {
	token_auth {
		%s
	}
	respond "user={http.auth.user.username} id={http.auth.user.id}"
}
`, db.storeLine()), "caddyfile")
	if db.kind == "postgres" {
		// Let go of the store's pool before the database is dropped.
		t.Cleanup(func() { _ = loadConfig(globalOptions + "http://localhost:9080 {\n\trespond ok\n}\n") })
	}
	if t.Failed() {
		t.FailNow()
	}
}

func djangoPtr(s string) *string { return &s }

func TestDjangoTokensWorkInCaddy(t *testing.T) {
	djangoRequire(t)
	djangoEachStore(t, testDjangoTokensWorkInCaddy)
}

func testDjangoTokensWorkInCaddy(t *testing.T, kind string) {
	db := djangoNewDB(t, kind)
	ids := djangoCreateUsers(t, db,
		djangoUser{Username: "alice", Password: "alice-pw", Active: true},
		djangoUser{Username: "bob", Password: "bob-pw", Active: false})
	aliceKey := djangoCreateToken(t, db, "alice")
	bobKey := djangoCreateToken(t, db, "bob")
	before := djangoSchema(t, db)

	djangoStartCaddy(t, db)

	t.Run("active user's token is accepted", func(t *testing.T) {
		got := djangoRawRequest(t, []string{"Token " + aliceKey})
		want := fmt.Sprintf("user=alice id=%d", ids["alice"])
		if got.Status != http.StatusOK || string(got.Body) != want {
			t.Errorf("got %v, want 200 %q", got, want)
		}
	})
	t.Run("inactive user's token is refused", func(t *testing.T) {
		got := djangoRawRequest(t, []string{"Token " + bobKey})
		want := djangoResponse{
			Status:          http.StatusUnauthorized,
			Body:            []byte(`{"detail":"User inactive or deleted."}`),
			WWWAuthenticate: djangoPtr("Token"),
			ContentType:     djangoPtr("application/json"),
		}
		if got.String() != want.String() {
			t.Errorf("got  %v\nwant %v", got, want)
		}
	})
	t.Run("schema is unchanged by Caddy", func(t *testing.T) {
		if after := djangoSchema(t, db); after != before {
			t.Errorf("sqlite_master changed.\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// djangoCaddyCLI runs the built caddy binary and returns stdout, stderr and
// the exit code.
func djangoCaddyCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(caddyBinary(t), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+home, "XDG_CONFIG_HOME="+home)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("caddy %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

var djangoKeyRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

func TestCaddyTokenUsersWorkInDjango(t *testing.T) {
	djangoRequire(t)
	djangoEachStore(t, testCaddyTokenUsersWorkInDjango)
}

// djangoTokenCLI runs `caddy token …` and requires success.
func djangoTokenCLI(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := djangoCaddyCLI(t, stdin, append([]string{"token"}, args...)...)
	if code != 0 {
		t.Fatalf("caddy token %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// djangoGenerated parses drf_create_token's line, exactly, and returns the
// key.
func djangoGenerated(t *testing.T, out, username string) string {
	t.Helper()
	m := djangoGeneratedRE.FindStringSubmatch(out)
	if m == nil || m[2] != username || !djangoKeyRE.MatchString(m[1]) {
		t.Fatalf("stdout %q, want exactly \"Generated token <40 lowercase hex> for user %s\\n\"", out, username)
	}
	return m[1]
}

func testCaddyTokenUsersWorkInDjango(t *testing.T, kind string) {
	db := djangoNewDB(t, kind)
	storeFlag := db.storeFlag()
	const password = "correct horse battery staple"

	// whoami asks DRF about one Authorization value.
	whoami := func(t *testing.T, key string) djangoResponse {
		t.Helper()
		return djangoDRFRequests(t, db, [][]string{{"Token " + key}})[0]
	}

	key := djangoGenerated(t, djangoTokenCLI(t, password+"\n", "adduser", "carol", "--password-stdin", storeFlag), "carol")
	if again := djangoGenerated(t, djangoTokenCLI(t, "", "create", "carol", storeFlag), "carol"); again != key {
		t.Errorf("create after adduser gave key %s, want the existing %s", again, key)
	}

	// carol's id as Django's authenticate() gives it, for the subtests,
	// each of which also runs alone.
	carolOK, carolID := djangoAuthenticate(t, db, "carol", password)
	t.Run("Django accepts carol's password", func(t *testing.T) {
		if ok, _ := djangoAuthenticate(t, db, "carol", password+"x"); ok {
			t.Error("authenticate() accepted a wrong password")
		}
		if !carolOK {
			t.Fatal("authenticate() refused carol's password")
		}
	})
	t.Run("DRF accepts carol's token", func(t *testing.T) {
		got := whoami(t, key)
		want := fmt.Sprintf(`{"id":%d,"username":"carol"}`, carolID)
		if got.Status != http.StatusOK || string(got.Body) != want {
			t.Errorf("got %v, want 200 %s", got, want)
		}
	})
	t.Run("reset gives a new key that DRF accepts instead of the old", func(t *testing.T) {
		newKey := djangoGenerated(t, djangoTokenCLI(t, "", "create", "-r", "carol", storeFlag), "carol")
		if newKey == key {
			t.Fatalf("create -r kept the key %s", key)
		}
		if got := whoami(t, key); got.Status != http.StatusUnauthorized || string(got.Body) != `{"detail":"Invalid token."}` {
			t.Errorf("old key: got %v, want 401 Invalid token.", got)
		}
		if got := whoami(t, newKey); got.Status != http.StatusOK || !strings.Contains(string(got.Body), `"username":"carol"`) {
			t.Errorf("new key: got %v, want 200 carol", got)
		}
		key = newKey
	})
	t.Run("unknown user", func(t *testing.T) {
		out, errOut, code := djangoCaddyCLI(t, "", "token", "create", "nobody", storeFlag)
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		if !strings.Contains(errOut, "Cannot create the Token: user nobody does not exist") {
			t.Errorf("stderr %q lacks drf_create_token's message", errOut)
		}
		if out != "" {
			t.Errorf("stdout %q, want nothing", out)
		}
	})
	t.Run("list shows keys only when asked", func(t *testing.T) {
		out := djangoTokenCLI(t, "", "list", storeFlag)
		if !strings.Contains(out, "carol") || strings.Contains(out, key) {
			t.Errorf("list without --show-keys:\n%s", out)
		}
		out = djangoTokenCLI(t, "", "list", "--show-keys", storeFlag)
		if !strings.Contains(out, "carol") || !strings.Contains(out, key) {
			t.Errorf("list --show-keys lacks carol's key %s:\n%s", key, out)
		}
	})
}

func TestHeaderParityWithDRF(t *testing.T) {
	djangoRequire(t)
	djangoEachStore(t, testHeaderParityWithDRF)
}

func testHeaderParityWithDRF(t *testing.T, kind string) {
	db := djangoNewDB(t, kind)
	djangoCreateUsers(t, db,
		djangoUser{Username: "alice", Password: "alice-pw", Active: true},
		djangoUser{Username: "bob", Password: "bob-pw", Active: false})
	key := djangoCreateToken(t, db, "alice")
	bobKey := djangoCreateToken(t, db, "bob")
	djangoStartCaddy(t, db)

	cases := []struct {
		name   string
		values []string // one per Authorization line; nil = no header
	}{
		{"absent", nil},
		{"empty", []string{""}},
		{"valid key", []string{"Token " + key}},
		{"keyword lower case", []string{"token " + key}},
		{"keyword upper case", []string{"TOKEN " + key}},
		{"keyword mixed case", []string{"tOkEn " + key}},
		{"keyword with Kelvin sign", []string{"To\xe2\x84\xaaen " + key}},
		{"tab separator", []string{"Token\t" + key}},
		{"repeated spaces", []string{"Token     " + key}},
		{"space and tab run", []string{"Token \t \t" + key}},
		{"leading and trailing spaces", []string{"   Token " + key + "   "}},
		{"leading and trailing tabs", []string{"\tToken " + key + "\t"}},
		{"NBSP separator", []string{"Token\xc2\xa0" + key}},
		{"NEL separator", []string{"Token\xc2\x85" + key}},
		{"latin-1 NBSP byte separator", []string{"Token\xa0" + key}},
		{"invalid UTF-8", []string{"Token " + key + "\xb8"}},
		{"invalid UTF-8 alone", []string{"Token \xff"}},
		{"valid non-ASCII key", []string{"Token caf\xc3\xa9"}},
		{"duplicate headers", []string{"Token " + key, "Token " + key}},
		{"keyword and key in two headers", []string{"Token", key}},
		{"second header empty", []string{"Token " + key, ""}},
		{"Bearer", []string{"Bearer " + key}},
		{"Basic", []string{"Basic YWxpY2U6YWxpY2UtcHc="}},
		{"TokenX", []string{"TokenX " + key}},
		{"keyword alone", []string{"Token"}},
		{"keyword and space", []string{"Token "}},
		{"three words", []string{"Token " + key + " extra"}},
		{"39-char key", []string{"Token " + key[:39]}},
		{"41-char key", []string{"Token " + key + "a"}},
		{"upper-cased key", []string{"Token " + strings.ToUpper(key)}},
		{"unknown key", []string{"Token " + strings.Repeat("0", 40)}},
		{"short non-hex key", []string{"Token abcd1234"}},
		{"SQL-looking key", []string{"Token '||'"}},
		{"comma in key", []string{"Token " + key + ","}},
		{"inactive user's key", []string{"Token " + bobKey}},
	}
	// Bytes that Go's HTTP server refuses in a header value (400 before any
	// handler runs) while DRF would split on (VT, FF) or keep them (NUL,
	// DEL): the documented known difference.
	refused := []struct {
		name   string
		values []string
	}{
		{"NUL in value", []string{"Token\x00" + key}},
		{"VT separator", []string{"Token\x0b" + key}},
		{"FF separator", []string{"Token\x0c" + key}},
		{"DEL in key", []string{"Token " + key + "\x7f"}},
	}

	var reqs [][]string
	for _, c := range cases {
		reqs = append(reqs, c.values)
	}
	for _, c := range refused {
		reqs = append(reqs, c.values)
	}
	drf := djangoDRFRequests(t, db, reqs)

	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := drf[i]
			if want.Status == http.StatusOK {
				// Caddy's site echoes the user where Django's view
				// returns JSON: compare the identity, not the bytes.
				var u struct {
					ID       int64  `json:"id"`
					Username string `json:"username"`
				}
				if err := json.Unmarshal(want.Body, &u); err != nil {
					t.Fatalf("DRF's 200 body %q: %v", want.Body, err)
				}
				want.Body = []byte(fmt.Sprintf("user=%s id=%d", u.Username, u.ID))
				want.ContentType = nil
			}
			got := djangoRawRequest(t, c.values)
			t.Logf("Authorization %q: Caddy %v", c.values, got)
			if want.Status == http.StatusOK {
				got.ContentType = nil
			}
			if got.String() != want.String() {
				t.Errorf("Authorization %q:\nCaddy %v\nDRF   %v", c.values, got, want)
			}
		})
	}
	for i, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			got := djangoRawRequest(t, c.values)
			t.Logf("Authorization %q: Caddy %v (DRF behind a WSGI server that lets it through: %v)",
				c.values, got, drf[len(cases)+i])
			if got.Status != http.StatusBadRequest {
				t.Errorf("Authorization %q: Caddy %v, want Go's 400", c.values, got)
			}
		})
	}
}
