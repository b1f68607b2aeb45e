package tokenauth

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5"

	"github.com/tokenauth/caddy-tokenauth/internal/knox"
)

// knoxCLIStore makes a Django database with knox's table in a fresh file
// with `caddy token migrate --tokens knox` and returns its --store flag
// and path.
func knoxCLIStore(t *testing.T) (flag, path string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "db.sqlite3")
	flag = "--store=sqlite:" + path
	if r := runCLI(t, "", "migrate", "--tokens=knox", flag); r.code != 0 {
		t.Fatalf("migrate --tokens knox: %v", r)
	}
	return flag, path
}

// knoxCreated is what `create --tokens knox` prints: the key, its expiry
// ("never" or a time), and that it cannot be shown again.
var knoxCreated = regexp.MustCompile(`^Generated token ([!-~]{0,10}[0-9a-f]{64}) for user (\S+)\n` +
	`(?:It never expires|It expires (\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ))\.\n` +
	`It cannot be shown again: knox_authtoken keeps only its digest\.\n$`)

// knoxCreate runs create with args and returns the key and the expiry it
// printed ("" for never).
func knoxCreate(t *testing.T, args ...string) (key, expiry string) {
	t.Helper()
	r := runCLI(t, "", append([]string{"create"}, args...)...)
	m := knoxCreated.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || withoutConfigLogs(r.stderr) != "" {
		t.Fatalf("create %q: %v", args, r)
	}
	return m[1], m[3]
}

// withoutConfigLogs is stderr without the lines a --config run logs
// (Caddy's "using config from file", "adapted config to JSON").
func withoutConfigLogs(stderr string) string {
	var kept []string
	for _, line := range strings.SplitAfter(stderr, "\n") {
		if !strings.HasPrefix(line, `{"level":"info"`) || !(strings.Contains(line, `"using config from file"`) || strings.Contains(line, `"adapted config to JSON"`)) {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "")
}

// knoxRow is knox_authtoken's row of the key, as stored: token_key,
// created and expiry as text ("NULL" for none), the username.
func knoxRow(t *testing.T, path, key string) (tokenKey, created, expiry, username string) {
	t.Helper()
	row := sqliteQuery(t, path, `SELECT k.token_key || '|' || CAST(k.created AS TEXT) || '|' || coalesce(CAST(k.expiry AS TEXT), 'NULL') || '|' || u.username
		FROM knox_authtoken k JOIN auth_user u ON u.id = k.user_id WHERE k.digest = ?`, knox.Digest(key))
	f := strings.Split(row, "|")
	return f[0], f[1], f[2], f[3]
}

// djangoSQLiteTime reads a datetime as Django writes it in SQLite.
func djangoSQLiteTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse("2006-01-02 15:04:05.999999", s)
	if err != nil {
		t.Fatalf("%q is not as Django writes a datetime: %v", s, err)
	}
	return at
}

// answerToKnox is what a token_auth handler with tokens knox over the
// SQLite database at path answers a request with key.
func answerToKnox(t *testing.T, path, key string) result {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"kind": "sqlite", "path": path})
	f := &fixture{h: &TokenAuth{StoreRaw: raw, Tokens: &Tokens{Kind: tokensKnox}}, path: path}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := f.h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.h.Cleanup()
	return f.do(t, "Token "+key)
}

// The key is printed once, the table gets its token_key and digest only
// (the key is nowhere in the file), it expires after knox's 10h, and a
// handler with tokens knox lets it through.
func TestCLIKnoxCreatePrintsTheKeyOnceAndStoresItsDigest(t *testing.T) {
	flag, path := knoxCLIStore(t)
	addUser(t, flag, "alice", "alice pass")
	before := time.Now().UTC()
	key, printed := knoxCreate(t, "alice", "--tokens=knox", flag)
	if len(key) != 64 {
		t.Errorf("key %q: want 64 hex characters (no prefix)", key)
	}
	tokenKey, created, expiry, user := knoxRow(t, path, key)
	if tokenKey != key[:15] || user != "alice" {
		t.Errorf("row: token_key %q, user %q; want %q, alice", tokenKey, user, key[:15])
	}
	c, e := djangoSQLiteTime(t, created), djangoSQLiteTime(t, expiry)
	if c.Before(before.Add(-time.Second)) || c.After(time.Now().Add(time.Second)) || !e.Equal(c.Add(10*time.Hour)) {
		t.Errorf("created %s, expiry %s: want now and now + 10h (knox's TOKEN_TTL)", created, expiry)
	}
	if printed != e.Format("2006-01-02 15:04:05Z") {
		t.Errorf("printed expiry %s, stored %s", printed, expiry)
	}
	for _, p := range []string{path, path + "-wal", path + "-journal"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte(key)) || bytes.Contains(b, []byte(key[15:])) {
			t.Errorf("%s holds the key", filepath.Base(p))
		}
	}
	if r := answerToKnox(t, path, key); r.code != 200 || !r.nextCalled || r.username != "alice" {
		t.Errorf("the new key through tokens knox: %d %s, next called %v, username %q", r.code, r.body, r.nextCalled, r.username)
	}
	// Another create makes another token: a knox user holds many.
	again, _ := knoxCreate(t, "alice", "--tokens=knox", flag)
	if again == key || sqliteQuery(t, path, "SELECT count(*) FROM knox_authtoken") != "2" {
		t.Errorf("a second create: key %s (first %s), %s rows; want a new key and 2 rows", again, key, sqliteQuery(t, path, "SELECT count(*) FROM knox_authtoken"))
	}
}

func TestCLIKnoxCreateExpires(t *testing.T) {
	flag, path := knoxCLIStore(t)
	addUser(t, flag, "alice", "alice pass")
	key, printed := knoxCreate(t, "alice", "--tokens=knox", "--expires=30d", flag)
	_, created, expiry, _ := knoxRow(t, path, key)
	if !djangoSQLiteTime(t, expiry).Equal(djangoSQLiteTime(t, created).Add(30*24*time.Hour)) || printed == "" {
		t.Errorf("--expires 30d: created %s, expiry %s (printed %q)", created, expiry, printed)
	}
	key, printed = knoxCreate(t, "alice", "--tokens=knox", "--expires=none", flag)
	if _, _, expiry, _ := knoxRow(t, path, key); expiry != "NULL" || printed != "" {
		t.Errorf("--expires none: expiry %s, printed %q; want NULL and \"It never expires.\"", expiry, printed)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--tokens=knox", "--expires=soon"}, `Error: --expires "soon": want a positive duration (10h, 30d) or none`},
		{[]string{"--tokens=knox", "--expires=-1h"}, `Error: --expires "-1h": want a positive duration`},
		{[]string{"--expires=1h"}, "Error: --expires is for knox tokens (--tokens knox)"},
		{[]string{"--tokens=knox", "--reset"}, "Error: --reset is for DRF tokens"},
		{[]string{"--tokens=jwt"}, `Error: --tokens "jwt": want drf or knox`},
	} {
		r := runCLI(t, "", append([]string{"create", "alice", flag}, tt.args...)...)
		if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, tt.want) {
			t.Errorf("create %q: want exit 1 and %q, got %v", tt.args, tt.want, r)
		}
	}
	if n := sqliteQuery(t, path, "SELECT count(*) FROM knox_authtoken"); n != "2" {
		t.Errorf("%s knox tokens after the refused creates, want 2", n)
	}
	r := runCLI(t, "", "create", "nobody", "--tokens=knox", flag)
	if r.code != 1 || r.stderr != "Error: Cannot create the Token: user nobody does not exist\n" {
		t.Errorf("create nobody: %v", r)
	}
}

// writeCaddyfile writes a Caddyfile with one token_auth block per body
// (each on its own path) and returns its --config flag.
func writeCaddyfile(t *testing.T, bodies ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(":8080 {\n")
	for i, body := range bodies {
		b.WriteString("\ttoken_auth /p" + strconv.Itoa(i) + "/* {\n" + body + "\n\t}\n")
	}
	b.WriteString("\trespond ok\n}\n")
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return "--config=" + path
}

// The config's tokens knox picks knox mode, with its ttl and prefix.
func TestCLIKnoxModeFromTheConfig(t *testing.T) {
	flag, path := knoxCLIStore(t)
	addUser(t, flag, "alice", "alice pass")
	storeLine := "\t\tstore sqlite " + path
	cfg := writeCaddyfile(t, storeLine+"\n\t\ttokens knox {\n\t\t\tttl 2h\n\t\t\tprefix myapp_\n\t\t\tlimit_per_user 1\n\t\t}")
	key, _ := knoxCreate(t, "alice", cfg)
	if !strings.HasPrefix(key, "myapp_") || len(key) != 6+64 {
		t.Errorf("key %q: want the config's prefix myapp_ and 64 hex", key)
	}
	tokenKey, created, expiry, _ := knoxRow(t, path, key)
	if tokenKey != key[:15] || !djangoSQLiteTime(t, expiry).Equal(djangoSQLiteTime(t, created).Add(2*time.Hour)) {
		t.Errorf("row: token_key %q, created %s, expiry %s; want %q and the config's ttl 2h", tokenKey, created, expiry, key[:15])
	}
	// limit_per_user is LoginView's: an administrator's create is not
	// limited.
	knoxCreate(t, "alice", cfg)
	// --expires wins over the config's ttl.
	key, _ = knoxCreate(t, "alice", cfg, "--expires=1h")
	if _, created, expiry, _ := knoxRow(t, path, key); !djangoSQLiteTime(t, expiry).Equal(djangoSQLiteTime(t, created).Add(time.Hour)) {
		t.Errorf("--expires 1h with ttl 2h in the config: created %s, expiry %s", created, expiry)
	}

	never := writeCaddyfile(t, storeLine+"\n\t\ttokens knox {\n\t\t\tttl none\n\t\t}")
	key, printed := knoxCreate(t, "alice", never)
	if _, _, expiry, _ := knoxRow(t, path, key); expiry != "NULL" || printed != "" {
		t.Errorf("ttl none in the config: expiry %s, printed %q", expiry, printed)
	}

	// Both kinds in one config: the command must be told which.
	mixed := writeCaddyfile(t, storeLine, storeLine+"\n\t\ttokens knox")
	r := runCLI(t, "", "create", "alice", mixed)
	if r.code != 1 || withoutConfigLogs(r.stderr) != "Error: the config's token_auth handlers use both drf and knox tokens: name one with --tokens\n" {
		t.Errorf("create with drf and knox blocks: %v", r)
	}
	if r := runCLI(t, "", "create", "alice", mixed, "--tokens=drf"); r.code != 0 || !tokenLine.MatchString(r.stdout) {
		t.Errorf("create --tokens drf with drf and knox blocks: %v", r)
	}
	if key, _ := knoxCreate(t, "alice", mixed, "--tokens=knox"); len(key) != 64 {
		t.Errorf("create --tokens knox with drf and knox blocks: key %q, want knox's default (no prefix)", key)
	}
	// A DRF config keeps DRF's command.
	drf := writeCaddyfile(t, storeLine)
	if r := runCLI(t, "", "create", "alice", drf); r.code != 0 || !tokenLine.MatchString(r.stdout) {
		t.Errorf("create with a DRF config: %v", r)
	}
}

func TestTokensFromConfig(t *testing.T) {
	handler := func(tokens string) string {
		if tokens == "" {
			return `{"handler":"token_auth"}`
		}
		return `{"handler":"token_auth","tokens":` + tokens + `}`
	}
	routes := func(handlers ...string) string {
		return `{"apps":{"http":{"servers":{"srv0":{"routes":[{"handle":[` + strings.Join(handlers, ",") + `]}]}}}}}`
	}
	knoxA := `{"kind":"knox","ttl":"2h","prefix":"a_"}`
	tests := []struct {
		name, cfg, kind string
		want            Tokens
		fail            string
	}{
		{"no handler", routes(`{"handler":"file_server"}`), "", Tokens{}, "no token_auth handler"},
		{"no tokens: drf", routes(handler("")), "", Tokens{Kind: "drf"}, ""},
		{"knox", routes(handler(knoxA)), "", Tokens{Kind: "knox", TTL: caddy.Duration(2 * time.Hour), Prefix: "a_"}, ""},
		{"knox twice, other settings the same", routes(handler(knoxA), handler(`{"kind":"knox","ttl":"2h","prefix":"a_","auto_refresh":true}`)), "",
			Tokens{Kind: "knox", TTL: caddy.Duration(2 * time.Hour), Prefix: "a_"}, ""},
		{"knox with two prefixes", routes(handler(knoxA), handler(`{"kind":"knox","ttl":"2h","prefix":"b_"}`)), "", Tokens{}, "different ttl or prefix"},
		{"both kinds", routes(handler(knoxA), handler("")), "", Tokens{}, "both drf and knox"},
		{"both kinds, knox asked", routes(handler(knoxA), handler("")), "knox", Tokens{Kind: "knox", TTL: caddy.Duration(2 * time.Hour), Prefix: "a_"}, ""},
		{"drf config, knox asked: knox's defaults", routes(handler("")), "knox", Tokens{Kind: "knox"}, ""},
	}
	for _, tt := range tests {
		got, err := tokensFromConfig([]byte(tt.cfg), tt.kind)
		if tt.fail != "" {
			if err == nil || !strings.Contains(err.Error(), tt.fail) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.fail)
			}
			continue
		}
		if err != nil || got.Kind != tt.want.Kind || got.TTL != tt.want.TTL || got.Prefix != tt.want.Prefix {
			t.Errorf("%s: got %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestCLIKnoxList(t *testing.T) {
	flag, path := knoxCLIStore(t)
	addUser(t, flag, "bob", "bob pass")
	addUser(t, flag, "alice", "alice pass")
	k1, _ := knoxCreate(t, "bob", "--tokens=knox", flag)
	k2, _ := knoxCreate(t, "alice", "--tokens=knox", "--expires=none", flag)
	k3, _ := knoxCreate(t, "alice", "--tokens=knox", flag)
	r := runCLI(t, "", "list", "--tokens=knox", flag)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("list: %v", r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 4 || !slices.Equal(strings.Fields(lines[0]), []string{"TOKEN_KEY", "USERNAME", "CREATED", "EXPIRES"}) {
		t.Fatalf("list: want a header and 3 tokens, got %q", r.stdout)
	}
	listed := func(key string) []string {
		_, created, expiry, user := knoxRow(t, path, key)
		e := "never"
		if expiry != "NULL" {
			e = djangoSQLiteTime(t, expiry).Format("2006-01-02 15:04:05Z")
		}
		return []string{key[:15], user, djangoSQLiteTime(t, created).Format("2006-01-02 15:04:05Z"), e}
	}
	// By username, then created.
	for i, key := range []string{k2, k3, k1} {
		want := strings.Join(listed(key), " ")
		if got := strings.Join(strings.Fields(lines[i+1]), " "); got != want {
			t.Errorf("line %d: %q, want the fields %q", i+1, got, want)
		}
	}
	if strings.Contains(r.stdout, k1[15:]) || strings.Contains(r.stdout, k3[15:]) {
		t.Errorf("list prints more of a key than its token_key: %q", r.stdout)
	}
	if r := runCLI(t, "", "list", "--tokens=knox", "--show-keys", flag); r.code != 1 || !strings.Contains(r.stderr, "knox keys are not stored") {
		t.Errorf("list --show-keys with knox tokens: %v", r)
	}
}

// The database real knox made, listed: its rows' times as knox wrote them.
func TestCLIKnoxListsTheRealKnoxDatabase(t *testing.T) {
	src, err := os.ReadFile("testdata/knox/knox.sqlite3")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "knox.sqlite3")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "list", "--tokens=knox", "--store=sqlite:"+path)
	want := "TOKEN_KEY        USERNAME  CREATED               EXPIRES\n" +
		"de0da3c88ff3950  uma       2025-06-01 00:00:00Z  2099-01-01 00:00:00Z\n" +
		"821896c5e5f8f33  uma       2025-06-01 00:01:00Z  never\n" +
		"0ee9620867620c6  victor    2025-06-01 00:02:00Z  2099-01-01 00:00:00Z\n" +
		"9548090e5682c56  victor    2025-06-01 00:03:00Z  2025-06-01 10:03:00Z\n" +
		"9c497ae1a1bfc8f  wendy     2025-06-01 00:04:00Z  2099-01-01 00:00:00Z\n"
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Errorf("list of knox's database: %v\nwant stdout\n%s", r, want)
	}
}

func TestCLIKnoxRevoke(t *testing.T) {
	flag, path := knoxCLIStore(t)
	addUser(t, flag, "alice", "alice pass")
	a1, _ := knoxCreate(t, "alice", "--tokens=knox", flag)
	a2, _ := knoxCreate(t, "alice", "--tokens=knox", flag)
	a3, _ := knoxCreate(t, "alice", "--tokens=knox", flag)
	count := func(key string) string {
		return sqliteQuery(t, path, "SELECT count(*) FROM knox_authtoken WHERE digest = ?", knox.Digest(key))
	}
	for _, c := range []struct {
		arg, want string
		gone      string // the key whose token is gone after
	}{
		{a1[:15], "Revoked 1 token with the token_key " + a1[:15] + "\n", a1},
		{a1[:15], "No token has the token_key " + a1[:15] + "\n", ""},
		{a2, "Revoked the token of the key " + a2[:15] + "…\n", a2},
		{a2, "No token has the key " + a2[:15] + "…\n", ""},
		{a3[:14], "No token has the token_key " + a3[:14] + "\n", ""},
	} {
		r := runCLI(t, "", "revoke", c.arg, "--tokens=knox", flag)
		if r.code != 0 || r.stdout != c.want || r.stderr != "" {
			t.Errorf("revoke %s: want exit 0 and %q, got %v", c.arg, c.want, r)
		}
		if c.gone != "" && count(c.gone) != "0" {
			t.Errorf("revoke %s: the token is still there", c.arg)
		}
	}
	if count(a3) != "1" {
		t.Error("revoke deleted a token it was not given")
	}
	if r := answerToKnox(t, path, a1); r.code != 401 || r.body != `{"detail":"Invalid token."}` {
		t.Errorf("a revoked key: %d %s", r.code, r.body)
	}
	for _, cmd := range [][]string{{"revoke", a3[:15]}, {"purge-expired"}} {
		r := runCLI(t, "", append(cmd, flag)...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "Error: "+cmd[0]+" is for knox tokens (--tokens knox, or tokens knox in the --config)") {
			t.Errorf("%s without knox tokens: %v", cmd[0], r)
		}
	}
	if count(a3) != "1" {
		t.Error("a refused revoke deleted a token")
	}
}

func TestCLIKnoxDeleteDeletesEveryTokenOfTheUser(t *testing.T) {
	flag, path := knoxCLIStore(t)
	addUser(t, flag, "alice", "alice pass")
	addUser(t, flag, "bob", "bob pass")
	knoxCreate(t, "alice", "--tokens=knox", flag)
	knoxCreate(t, "alice", "--tokens=knox", "--expires=none", flag)
	bob, _ := knoxCreate(t, "bob", "--tokens=knox", flag)
	for _, c := range []struct{ user, want string }{
		{"alice", "Deleted 2 tokens for user alice\n"},
		{"alice", "User alice has no token\n"},
	} {
		r := runCLI(t, "", "delete", c.user, "--tokens=knox", flag)
		if r.code != 0 || r.stdout != c.want || r.stderr != "" {
			t.Errorf("delete %s: want %q, got %v", c.user, c.want, r)
		}
	}
	if n := sqliteQuery(t, path, "SELECT count(*) FROM knox_authtoken"); n != "1" || count1(t, path, bob) != "1" {
		t.Errorf("after delete alice: %s knox tokens, want bob's one", n)
	}
	// DRF's token of alice (adduser made one) is not knox's.
	if n := sqliteQuery(t, path, "SELECT count(*) FROM authtoken_token JOIN auth_user ON auth_user.id = user_id WHERE username = 'alice'"); n != "1" {
		t.Errorf("delete --tokens knox deleted alice's DRF token")
	}
	r := runCLI(t, "", "delete", "nobody", "--tokens=knox", flag)
	if r.code != 1 || r.stdout != "" || r.stderr != "Error: user nobody: user does not exist\n" {
		t.Errorf("delete nobody: %v", r)
	}
}

// count1 is how many knox tokens have the key's digest.
func count1(t *testing.T, path, key string) string {
	t.Helper()
	return sqliteQuery(t, path, "SELECT count(*) FROM knox_authtoken WHERE digest = ?", knox.Digest(key))
}

func TestCLIKnoxPurgeExpired(t *testing.T) {
	flag, path := knoxCLIStore(t)
	addUser(t, flag, "alice", "alice pass")
	live, _ := knoxCreate(t, "alice", "--tokens=knox", flag)
	never, _ := knoxCreate(t, "alice", "--tokens=knox", "--expires=none", flag)
	// Two that expired, as Django would have written them.
	for _, k := range []string{knox.Generate(""), knox.Generate("")} {
		sqliteExec(t, path, `INSERT INTO knox_authtoken (digest, created, user_id, expiry, token_key) SELECT ?, '2025-06-01 00:00:00', id, '2025-06-01 10:00:00.5', ? FROM auth_user WHERE username = 'alice'`, knox.Digest(k), knox.TokenKey(k))
	}
	for _, want := range []string{"Deleted 2 expired tokens\n", "Deleted 0 expired tokens\n"} {
		r := runCLI(t, "", "purge-expired", "--tokens=knox", flag)
		if r.code != 0 || r.stdout != want || r.stderr != "" {
			t.Errorf("purge-expired: want %q, got %v", want, r)
		}
	}
	if count1(t, path, live) != "1" || count1(t, path, never) != "1" {
		t.Error("purge-expired deleted a token that has not expired")
	}
}

// sqliteExec runs one statement on the database at path.
func sqliteExec(t *testing.T, path, stmt string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func TestCLIKnoxMigrateMakesKnoxsTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.sqlite3")
	flag := "--store=sqlite:" + path
	const out = migratedKnoxTables + "\n"
	r := runCLI(t, "", "migrate", "--tokens=knox", flag)
	if r.code != 0 || r.stdout != out || r.stderr != "" {
		t.Fatalf("migrate --tokens knox: %v", r)
	}
	if got := sqliteQuery(t, path, "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name)"); got != "auth_group auth_group_permissions auth_permission auth_user auth_user_groups auth_user_user_permissions authtoken_token django_content_type knox_authtoken sqlite_sequence" {
		t.Errorf("tables after migrate --tokens knox: %s", got)
	}
	// knox's DDL, statement for statement (testdata/knox, as Django made it).
	ddl, err := os.ReadFile("testdata/knox/schema.sqlite.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range strings.Split(strings.TrimSpace(string(ddl)), ";\n") {
		stmt = strings.TrimSuffix(strings.TrimSpace(stmt), ";")
		if n := sqliteQuery(t, path, "SELECT count(*) FROM sqlite_master WHERE sql = ?", stmt); n != "1" {
			t.Errorf("no table or index made by %s", stmt)
		}
	}
	addUser(t, flag, "alice", "alice pass")
	key, _ := knoxCreate(t, "alice", "--tokens=knox", flag)
	if r := runCLI(t, "", "migrate", "--tokens=knox", flag); r.code != 0 || r.stdout != out {
		t.Errorf("migrate --tokens knox again: %v", r)
	}
	if count1(t, path, key) != "1" {
		t.Error("migrate again lost a token")
	}
	const notify = "Error: --notify: only a postgres store has triggers (a sqlite store notices changes by itself)\n"
	if r := runCLI(t, "", "migrate", "--tokens=knox", "--notify", flag); r.code != 1 || r.stderr != notify {
		t.Errorf("migrate --tokens knox --notify on sqlite: %v", r)
	}
}

// migrate --tokens knox --notify makes knox_authtoken and its triggers in
// PostgreSQL.
func TestCLIKnoxMigrateNotifyOnPostgres(t *testing.T) {
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
	schema := "cli_knox_" + strings.ToLower(knox.Generate("")[:12])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	spec := pgKeyValue(t, dsn, schema)
	r := runCLI(t, "", "migrate", "--tokens=knox", "--notify", "--store", spec)
	want := migratedKnoxTables + "\n" + migratedKnoxTriggers + "\n"
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Fatalf("migrate --tokens knox --notify: %v", r)
	}
	rows, err := conn.Query(ctx, `SELECT c.relname || ':' || t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal ORDER BY 1`, schema)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got) // bytewise, whatever the database's collation
	wantTriggers := []string{"auth_user:token_auth_notify", "auth_user:token_auth_notify_flags", "authtoken_token:token_auth_notify", "knox_authtoken:token_auth_notify", "knox_authtoken:token_auth_notify_update"}
	for _, table := range []string{"django_content_type", "auth_permission", "auth_group", "auth_group_permissions", "auth_user_groups", "auth_user_user_permissions"} {
		wantTriggers = append(wantTriggers, table+":token_auth_notify")
	}
	if slices.Sort(wantTriggers); !slices.Equal(got, wantTriggers) {
		t.Errorf("triggers: %v, want %v", got, wantTriggers)
	}
	addUser(t, "--store="+spec, "alice", "alice pass")
	key, _ := knoxCreate(t, "alice", "--tokens=knox", "--store", spec)
	var digest string
	if err := conn.QueryRow(ctx, `SELECT digest FROM `+schema+`.knox_authtoken WHERE token_key = $1`, key[:15]).Scan(&digest); err != nil || digest != knox.Digest(key) {
		t.Errorf("the new token's row: digest %s…, %v", digest, err)
	}
}
