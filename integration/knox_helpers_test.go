package integration

// What the knox tests share: finding django-rest-knox, running
// django/knoxcheck.py (the real knox, on Debian's Django and DRF), Django
// databases with knox's tables and copies of them, sending the same raw
// request to Caddy and to knox, and comparing the two answers.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/jackc/pgx/v5"
)

// knoxSrc is the django-rest-knox checkout the tests run (the directory
// holding knox/): $KNOX_SRC; else ../shared/vendor/django-rest-knox beside
// the repository, when it exists; else the copy vendored in
// django/third_party.
func knoxSrc(t *testing.T) string {
	t.Helper()
	if src := os.Getenv("KNOX_SRC"); src != "" {
		return src
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(root, "..", "shared", "vendor", "django-rest-knox")
	if _, err := os.Stat(filepath.Join(shared, "knox", "auth.py")); err == nil {
		return shared
	}
	return filepath.Join(root, "integration", "django", "third_party", "django-rest-knox")
}

var (
	knoxOnce sync.Once
	knoxErr  error
)

// knoxRequire skips (or, under CI=true, fails) the test when
// /usr/bin/python3 cannot import Django, DRF and the knox of knoxSrc.
func knoxRequire(t *testing.T) {
	t.Helper()
	djangoRequire(t)
	src := knoxSrc(t)
	knoxOnce.Do(func() {
		cmd := exec.Command(djangoPython, "-c", "import sys, knox; print(knox.__file__)")
		cmd.Env = append(os.Environ(), "PYTHONPATH="+src, "PYTHONDONTWRITEBYTECODE=1")
		out, err := cmd.CombinedOutput()
		switch {
		case err != nil:
			knoxErr = fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
		case !strings.HasPrefix(string(out), src+string(filepath.Separator)):
			knoxErr = fmt.Errorf("knox imported from %s, not from %s", bytes.TrimSpace(out), src)
		}
	})
	requireOrSkip(t, "django-rest-knox ("+src+") for "+djangoPython, knoxErr)
}

// knoxSettings are the settings of one knox configuration, as Caddy's
// `tokens knox` block and as knox's REST_KNOX.
type knoxSettings struct {
	TTL         time.Duration // 0: knox's default, 10h
	NoExpiry    bool          // ttl none (TOKEN_TTL None)
	Limit       int           // TOKEN_LIMIT_PER_USER; 0: none
	AutoRefresh bool
	MaxTTL      time.Duration // AUTO_REFRESH_MAX_TTL; 0: none
	MinRefresh  time.Duration // MIN_REFRESH_INTERVAL; 0: knox's default, 60s
	Prefix      string
}

// ttl is the lifetime of a new token; 0 for none.
func (s knoxSettings) ttl() time.Duration {
	switch {
	case s.NoExpiry:
		return 0
	case s.TTL == 0:
		return 10 * time.Hour
	}
	return s.TTL
}

// caddyfile is the `tokens knox` block.
func (s knoxSettings) caddyfile() string {
	var b strings.Builder
	b.WriteString("tokens knox {\n")
	line := func(format string, args ...any) { fmt.Fprintf(&b, "\t\t\t"+format+"\n", args...) }
	switch {
	case s.NoExpiry:
		line("ttl none")
	case s.TTL != 0:
		line("ttl %s", s.TTL)
	}
	if s.Limit != 0 {
		line("limit_per_user %d", s.Limit)
	}
	if s.AutoRefresh {
		line("auto_refresh")
	}
	if s.MaxTTL != 0 {
		line("max_ttl %s", s.MaxTTL)
	}
	if s.MinRefresh != 0 {
		line("min_refresh_interval %s", s.MinRefresh)
	}
	if s.Prefix != "" {
		line("prefix %s", s.Prefix)
	}
	b.WriteString("\t\t}")
	return b.String()
}

// restKnox is knoxcheck.py's "knox" object: REST_KNOX, durations in
// seconds.
func (s knoxSettings) restKnox() map[string]any {
	m := map[string]any{
		"TOKEN_TTL":            s.ttl().Seconds(),
		"AUTO_REFRESH":         s.AutoRefresh,
		"MIN_REFRESH_INTERVAL": 60,
		"TOKEN_PREFIX":         s.Prefix,
		"TOKEN_LIMIT_PER_USER": nil,
		"AUTO_REFRESH_MAX_TTL": nil,
	}
	if s.NoExpiry {
		m["TOKEN_TTL"] = nil
	}
	if s.Limit != 0 {
		m["TOKEN_LIMIT_PER_USER"] = s.Limit
	}
	if s.MaxTTL != 0 {
		m["AUTO_REFRESH_MAX_TTL"] = s.MaxTTL.Seconds()
	}
	if s.MinRefresh != 0 {
		m["MIN_REFRESH_INTERVAL"] = int(s.MinRefresh / time.Second)
	}
	return m
}

// knoxEnv is djangoEnv with the knox project and knox on the path.
func knoxEnv(t *testing.T, db djangoDB) []string {
	src := knoxSrc(t)
	return append(djangoEnv(db), "DJANGO_SETTINGS_MODULE=knox_site.settings", "KNOX_SRC="+src, "PYTHONPATH="+src)
}

// knoxCheck runs knoxcheck.py <command> on db with in as JSON (and s as
// its knox settings) and decodes its answer into out.
func knoxCheck(t *testing.T, db djangoDB, s knoxSettings, command string, in map[string]any, out any) {
	t.Helper()
	doc := map[string]any{"knox": s.restKnox()}
	for k, v := range in {
		doc[k] = v
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(djangoPython, "knoxcheck.py", command)
	cmd.Dir = djangoDir(t)
	cmd.Env = knoxEnv(t, db)
	cmd.Stdin = bytes.NewReader(b)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("knoxcheck.py %s: %v\nstdout: %s\nstderr: %s", command, err, stdout.Bytes(), stderr.Bytes())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("knoxcheck.py %s: %v in %s", command, err, stdout.Bytes())
	}
}

// knoxNewDB makes a fresh Django database of the kind with knox's tables
// (knox_site's migrate).
func knoxNewDB(t *testing.T, kind string) djangoDB {
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
	var res map[string]bool
	knoxCheck(t, db, knoxSettings{}, "migrate", nil, &res)
	return db
}

// knoxCopyDB is a copy of db (a file copy, or a PostgreSQL database made
// from db as its template), removed when the test ends. Nothing may be
// connected to db meanwhile.
func knoxCopyDB(t *testing.T, db djangoDB) djangoDB {
	t.Helper()
	c := djangoDB{kind: db.kind}
	switch db.kind {
	case "sqlite":
		c.path = filepath.Join(t.TempDir(), "db.sqlite3")
		b, err := os.ReadFile(db.path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c.path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	case "postgres":
		var b [6]byte
		_, _ = rand.Read(b[:])
		c.name = "it_" + hex.EncodeToString(b[:])
		conn := pgConnect(t, pgDSN(t))
		ctx := context.Background()
		if _, err := conn.Exec(ctx, `CREATE DATABASE "`+c.name+`" TEMPLATE "`+db.name+`"`); err != nil {
			t.Fatalf("copying database %s: %v", db.name, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, pgDSN(t))
			if err != nil {
				t.Logf("dropping database %s: %v", c.name, err)
				return
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS "`+c.name+`" WITH (FORCE)`); err != nil {
				t.Logf("dropping database %s: %v", c.name, err)
			}
		})
		c.dsn = pgWithDatabase(t, pgDSN(t), c.name)
	}
	return c
}

// knoxCreateUsers creates users with the ORM and returns their ids.
func knoxCreateUsers(t *testing.T, db djangoDB, users ...djangoUser) map[string]int64 {
	t.Helper()
	var created []djangoUser
	knoxCheck(t, db, knoxSettings{}, "createusers", map[string]any{"users": users}, &created)
	ids := make(map[string]int64)
	for _, u := range created {
		ids[u.Username] = u.ID
	}
	return ids
}

// knoxNewToken is a token for knoxcheck.py createtokens.
type knoxNewToken struct {
	Username string
	TTL      time.Duration // 0: the settings' TOKEN_TTL
	NoExpiry bool          // expiry None
	Prefix   *string       // nil: the settings' TOKEN_PREFIX
	Created  *time.Time    // written after the create
	Expiry   *time.Time    // written after the create
}

// knoxToken is a token knox made, or a row of knox_authtoken.
type knoxToken struct {
	Token    string     `json:"token"` // only from createtokens
	TokenKey string     `json:"token_key"`
	Digest   string     `json:"digest"`
	User     string     `json:"user"` // only from state
	Created  time.Time  `json:"created"`
	Expiry   *time.Time `json:"expiry"`
}

// knoxCreateTokens has knox make the tokens (AuthToken.objects.create).
func knoxCreateTokens(t *testing.T, db djangoDB, s knoxSettings, tokens ...knoxNewToken) []knoxToken {
	t.Helper()
	var in []map[string]any
	for _, tk := range tokens {
		m := map[string]any{"username": tk.Username}
		switch {
		case tk.NoExpiry:
			m["ttl"] = nil
		case tk.TTL != 0:
			m["ttl"] = tk.TTL.Seconds()
		}
		if tk.Prefix != nil {
			m["prefix"] = *tk.Prefix
		}
		if tk.Created != nil {
			m["created"] = tk.Created.UTC().Format(time.RFC3339Nano)
		}
		if tk.Expiry != nil {
			m["expiry"] = tk.Expiry.UTC().Format(time.RFC3339Nano)
		}
		in = append(in, m)
	}
	var out []knoxToken
	knoxCheck(t, db, s, "createtokens", map[string]any{"tokens": in}, &out)
	if len(out) != len(tokens) {
		t.Fatalf("knoxcheck.py createtokens: %d tokens for %d", len(out), len(tokens))
	}
	return out
}

// knoxUserState is a user as knoxcheck.py state reports it.
type knoxUserState struct {
	ID        int64      `json:"id"`
	IsActive  bool       `json:"is_active"`
	LastLogin *time.Time `json:"last_login"`
}

// knoxDBState is knox_authtoken and the users, read by Django.
type knoxDBState struct {
	Tokens []knoxToken              `json:"tokens"`
	Users  map[string]knoxUserState `json:"users"`
}

// byDigest is the row with this digest, or nil.
func (s knoxDBState) byDigest(digest string) *knoxToken {
	for i := range s.Tokens {
		if s.Tokens[i].Digest == digest {
			return &s.Tokens[i]
		}
	}
	return nil
}

// byKey is the row of this key (its token_key and digest), or nil.
func (s knoxDBState) byKey(key string) *knoxToken {
	return s.byDigest(knoxDigest(key))
}

// of is the rows of the user.
func (s knoxDBState) of(user string) []knoxToken {
	var out []knoxToken
	for _, tk := range s.Tokens {
		if tk.User == user {
			out = append(out, tk)
		}
	}
	return out
}

// knoxState reads the database through Django's ORM.
func knoxState(t *testing.T, db djangoDB) knoxDBState {
	t.Helper()
	var st knoxDBState
	knoxCheck(t, db, knoxSettings{}, "state", nil, &st)
	return st
}

// knoxRequest is one request, sent as it is to Caddy and to knox.
type knoxRequest struct {
	Method        string            // "": POST
	Path          string            // e.g. knoxLogin
	ContentType   *string           // nil: no Content-Type
	Body          []byte            //
	Authorization []string          // one raw value per Authorization line
	Headers       map[string]string // other headers
}

// The paths of the knox site, the same in Caddy's and in knox_site's.
const (
	knoxLogin     = "/api/auth/login/"
	knoxLogout    = "/api/auth/logout/"
	knoxLogoutAll = "/api/auth/logoutall/"
	knoxWhoami    = "/api/whoami/"
)

func (r knoxRequest) method() string {
	if r.Method == "" {
		return http.MethodPost
	}
	return r.Method
}

func (r knoxRequest) String() string {
	return fmt.Sprintf("%s %s Content-Type=%s body=%q Authorization=%q headers=%q",
		r.method(), r.Path, deref(r.ContentType), r.Body, r.Authorization, r.Headers)
}

// knoxResponse is one answer, from Caddy or from knox.
type knoxResponse struct {
	Status          int       `json:"status"`
	Body            []byte    `json:"body"`
	ContentType     *string   `json:"content_type"`
	Allow           *string   `json:"allow"`
	WWWAuthenticate *string   `json:"www_authenticate"`
	Vary            *string   `json:"vary"`
	SetCookie       []string  `json:"set_cookie"`
	View            *string   `json:"view"` // knox only: basic or recipe for the login path
	Started         time.Time `json:"started"`
	Finished        time.Time `json:"finished"`
}

func (r knoxResponse) String() string {
	p := func(s *string) string {
		if s == nil {
			return "(none)"
		}
		return fmt.Sprintf("%q", *s)
	}
	return fmt.Sprintf("%d body=%q Content-Type=%s Allow=%s WWW-Authenticate=%s Vary=%s Set-Cookie=%q",
		r.Status, r.Body, p(r.ContentType), p(r.Allow), p(r.WWWAuthenticate), p(r.Vary), r.SetCookie)
}

// knoxAsk sends the requests, in order, to knox on db.
func knoxAsk(t *testing.T, db djangoDB, s knoxSettings, reqs []knoxRequest) []knoxResponse {
	t.Helper()
	var wire []map[string]any
	for _, r := range reqs {
		auth := []string{}
		for _, v := range r.Authorization {
			auth = append(auth, base64.StdEncoding.EncodeToString([]byte(v)))
		}
		wire = append(wire, map[string]any{
			"method":        r.method(),
			"path":          r.Path,
			"content_type":  r.ContentType,
			"body":          r.Body,
			"authorization": auth,
			"headers":       r.Headers,
		})
	}
	var res []knoxResponse
	knoxCheck(t, db, s, "requests", map[string]any{"requests": wire}, &res)
	if len(res) != len(reqs) {
		t.Fatalf("knoxcheck.py requests: %d answers for %d requests", len(res), len(reqs))
	}
	return res
}

// knoxSend sends r to the Caddy test site as raw bytes (so that no Go
// client normalises the header values), on a connection of its own.
func knoxSend(t *testing.T, r knoxRequest) knoxResponse {
	t.Helper()
	conn, err := net.DialTimeout("tcp", "127.0.0.1:9080", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: localhost:9080\r\n", r.method(), r.Path)
	for _, v := range r.Authorization {
		b.WriteString("Authorization: " + v + "\r\n")
	}
	if r.ContentType != nil {
		b.WriteString("Content-Type: " + *r.ContentType + "\r\n")
	}
	if len(r.Body) > 0 {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.Body))
	}
	names := make([]string, 0, len(r.Headers))
	for k := range r.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		b.WriteString(k + ": " + r.Headers[k] + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	b.Write(r.Body)
	started := time.Now()
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: reading Caddy's response: %v", r, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	finished := time.Now()
	hdr := func(name string) *string {
		if v, ok := resp.Header[name]; ok {
			s := strings.Join(v, ", ")
			return &s
		}
		return nil
	}
	out := knoxResponse{
		Status:          resp.StatusCode,
		Body:            body,
		ContentType:     hdr("Content-Type"),
		Allow:           hdr("Allow"),
		WWWAuthenticate: hdr("Www-Authenticate"),
		Vary:            hdr("Vary"),
		SetCookie:       []string{},
		Started:         started,
		Finished:        finished,
	}
	for _, c := range resp.Cookies() {
		out.SetCookie = append(out.SetCookie, c.Name)
	}
	slices.Sort(out.SetCookie)
	return out
}

// knoxSendAll sends the requests to Caddy, in order.
func knoxSendAll(t *testing.T, reqs []knoxRequest) []knoxResponse {
	t.Helper()
	out := make([]knoxResponse, len(reqs))
	for i, r := range reqs {
		out[i] = knoxSend(t, r)
	}
	return out
}

// knoxStartCaddy serves http://localhost:9080 with token_auth /api/* in
// knox mode on db, with the login, logout and logout_all endpoints at
// knox_site's paths, the global options global (globalOptions or a variant)
// and extra lines in the site; requests that get through answer
// "user=<username> id=<id>".
func knoxStartCaddy(t *testing.T, db djangoDB, s knoxSettings, global, site string) {
	t.Helper()
	tc := caddytest.NewTester(t)
	tc.InitServer(global+fmt.Sprintf(`
http://localhost:9080 {
	token_auth /api/* {
		%s
		%s
		login %s
		logout %s
		logout_all %s
	}
%s
	respond "user={http.auth.user.username} id={http.auth.user.id}"
}
`, db.storeLine(), s.caddyfile(), knoxLogin, knoxLogout, knoxLogoutAll, site), "caddyfile")
	if db.kind == "postgres" {
		// Let go of the store's pool before the database is dropped.
		t.Cleanup(func() { _ = loadConfig(globalOptions + "http://localhost:9080 {\n\trespond ok\n}\n") })
	}
	if t.Failed() {
		t.FailNow()
	}
}

// knoxDigest is knox's hash_token: SHA-512 of the key, in hex.
func knoxDigest(key string) string {
	h := sha512.Sum512([]byte(key))
	return hex.EncodeToString(h[:])
}

// Requests.

func knoxGet(key string) knoxRequest {
	r := knoxRequest{Method: http.MethodGet, Path: knoxWhoami}
	if key != "" {
		r.Authorization = []string{"Token " + key}
	}
	return r
}

func knoxBasic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// knoxBasicLogin is POST login/ with Basic credentials and no body.
func knoxBasicLogin(user, password string) knoxRequest {
	return knoxRequest{Path: knoxLogin, Authorization: []string{knoxBasic(user, password)}}
}

// knoxBodyLogin is POST login/ with a JSON body.
func knoxBodyLogin(body string) knoxRequest {
	return knoxRequest{Path: knoxLogin, ContentType: ctJSON, Body: []byte(body)}
}

// knoxPasswordLogin is knoxBodyLogin with the username and password.
func knoxPasswordLogin(user, password string) knoxRequest {
	b, _ := json.Marshal(map[string]string{"username": user, "password": password})
	return knoxBodyLogin(string(b))
}

// knoxPost is POST path with the key.
func knoxPost(path, key string) knoxRequest {
	r := knoxRequest{Path: path}
	if key != "" {
		r.Authorization = []string{"Token " + key}
	}
	return r
}

func (r knoxRequest) with(headers ...string) knoxRequest {
	h := make(map[string]string)
	for k, v := range r.Headers {
		h[k] = v
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Authorization" {
			r.Authorization = append(slices.Clone(r.Authorization), headers[i+1])
			continue
		}
		h[headers[i]] = headers[i+1]
	}
	r.Headers = h
	return r
}

func (r knoxRequest) as(method string) knoxRequest {
	r.Method = method
	return r
}

// Comparing answers.

// knoxExpiryRE is DRF's ISO 8601 of a UTC datetime, as knox's LoginView
// writes it: Z, and six fractional digits unless they are all zero.
const knoxExpiryRE = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z`

// knoxNormalise replaces in a body what must differ between two servers
// (the keys and the expiries of new tokens), after checking their exact
// format, and in the headers what knox_site's sessions add; it returns
// what it replaced.
func knoxNormalise(r knoxResponse, prefix string) (knoxResponse, []string, []string, error) {
	var keys, expiries []string
	var err error
	keyRE := regexp.MustCompile(`"(` + regexp.QuoteMeta(prefix) + `[0-9a-f]{64})"`)
	expRE := regexp.MustCompile(`"expiry": ?"([^"]*)"`)
	body := expRE.ReplaceAllFunc(r.Body, func(m []byte) []byte {
		v := expRE.FindSubmatch(m)[1]
		if !regexp.MustCompile(`^`+knoxExpiryRE+`$`).Match(v) || bytes.HasSuffix(v, []byte(".000000Z")) {
			err = fmt.Errorf("expiry %q is not DRF's ISO 8601 (UTC, Z, 6 fractional digits or none)", v)
			return m
		}
		expiries = append(expiries, string(v))
		return bytes.Replace(m, v, []byte("<expiry>"), 1)
	})
	body = keyRE.ReplaceAllFunc(body, func(m []byte) []byte {
		keys = append(keys, string(keyRE.FindSubmatch(m)[1]))
		return []byte(`"<key>"`)
	})
	r.Body = body
	// knox's recipe calls django.contrib.auth.login(), which stores a
	// session: Django's SessionMiddleware then answers Set-Cookie
	// sessionid and Vary: Cookie. Caddy keeps no Django session.
	if slices.Contains(r.SetCookie, "sessionid") && r.Vary != nil {
		var rest []string
		for _, v := range strings.Split(*r.Vary, ",") {
			if v = strings.TrimSpace(v); v != "Cookie" {
				rest = append(rest, v)
			}
		}
		if len(rest) == 0 {
			r.Vary = nil
		} else {
			s := strings.Join(rest, ", ")
			r.Vary = &s
		}
		r.SetCookie = slices.DeleteFunc(slices.Clone(r.SetCookie), func(c string) bool { return c == "sessionid" })
	}
	if r.SetCookie == nil {
		r.SetCookie = []string{}
	}
	return r, keys, expiries, err
}

// knoxCompare fails the test when Caddy's answer differs from knox's in
// anything but what knoxNormalise replaces; it returns the new key of
// each (or "").
func knoxCompare(t *testing.T, req knoxRequest, caddy, knox knoxResponse, prefix string) (caddyKey, knoxKey string) {
	t.Helper()
	c, ckeys, _, cerr := knoxNormalise(caddy, prefix)
	k, kkeys, _, kerr := knoxNormalise(knox, prefix)
	if kerr != nil {
		t.Errorf("knox: %v", kerr)
	}
	if cerr != nil {
		t.Errorf("Caddy: %v", cerr)
	}
	if c.String() != k.String() {
		t.Errorf("%s\nCaddy %v\nknox  %v", req, caddy, knox)
	}
	if len(ckeys) == 1 {
		caddyKey = ckeys[0]
	}
	if len(kkeys) == 1 {
		knoxKey = kkeys[0]
	}
	return caddyKey, knoxKey
}

// knoxLoginBody is the key and the expiry (nil for null) of a login's 200
// body, which must be exactly {"expiry":…,"token":…}.
func knoxLoginBody(t *testing.T, who string, r knoxResponse, prefix string) (key string, expiry *time.Time) {
	t.Helper()
	re := regexp.MustCompile(`^\{"expiry":(null|"(` + knoxExpiryRE + `)"),"token":"(` + regexp.QuoteMeta(prefix) + `[0-9a-f]{64})"\}$`)
	m := re.FindSubmatch(r.Body)
	if r.Status != http.StatusOK || m == nil {
		t.Fatalf("%s: login answered %v, want 200 {\"expiry\":…,\"token\":\"%s<64 hex>\"}", who, r, prefix)
	}
	if len(m[2]) > 0 {
		e, err := time.Parse(time.RFC3339Nano, string(m[2]))
		if err != nil {
			t.Fatalf("%s: expiry %q: %v", who, m[2], err)
		}
		expiry = &e
	}
	return string(m[3]), expiry
}

// knoxWithin reports whether at lies in [from, to] widened by slack.
func knoxWithin(at, from, to time.Time, slack time.Duration) bool {
	return !at.Before(from.Add(-slack)) && !at.After(to.Add(slack))
}

// knoxWhoamiOK is the Caddy site's answer for a user that knox's whoami
// answered with, for comparing 200s: Caddy's site echoes the user where
// knox_site's view returns JSON.
func knoxWhoamiOK(t *testing.T, knox knoxResponse) string {
	t.Helper()
	var u struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
	}
	if err := json.Unmarshal(knox.Body, &u); err != nil {
		t.Fatalf("knox's 200 body %q: %v", knox.Body, err)
	}
	return fmt.Sprintf("user=%s id=%d", u.Username, u.ID)
}

// knoxCompareWhoami compares a protected route's answers: a 200 by the
// identity, anything else in full (Allow aside: the Caddy site answers
// every method).
func knoxCompareWhoami(t *testing.T, req knoxRequest, caddy, knox knoxResponse) {
	t.Helper()
	if knox.Status == http.StatusOK {
		if want := knoxWhoamiOK(t, knox); caddy.Status != http.StatusOK || string(caddy.Body) != want {
			t.Errorf("%s\nCaddy %v\nknox  %v (want Caddy's 200 %q)", req, caddy, knox, want)
		}
		return
	}
	knox.Allow, caddy.Allow = nil, nil
	if caddy.String() != knox.String() {
		t.Errorf("%s\nCaddy %v\nknox  %v", req, caddy, knox)
	}
}

// knoxTables is every value of every row of every table of db, as text,
// one row a line: what a grep of the tables sees.
func knoxTables(t *testing.T, db djangoDB) string {
	t.Helper()
	var b strings.Builder
	if db.kind == "postgres" {
		ctx := context.Background()
		conn := pgConnect(t, db.dsn)
		rows, err := conn.Query(ctx, `SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables
			WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range tables {
			rows, err := conn.Query(ctx, `SELECT t::text FROM `+table+` t`)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range lines {
				b.WriteString(table + " " + l + "\n")
			}
		}
		return b.String()
	}
	conn, err := sql.Open("sqlite", "file:"+db.path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	for _, table := range tables {
		rows, err := conn.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			b.WriteString(table)
			for _, v := range vals {
				fmt.Fprintf(&b, " %s", v)
			}
			b.WriteString("\n")
		}
		rows.Close()
	}
	return b.String()
}

// knoxSQLiteTimes is every created, expiry and last_login of db (SQLite)
// as stored text, for checking Django's format.
func knoxSQLiteTimes(t *testing.T, db djangoDB) []string {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+db.path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out []string
	for _, q := range []string{
		`SELECT 'knox_authtoken.created ' || quote(created) FROM knox_authtoken`,
		`SELECT 'knox_authtoken.expiry ' || quote(expiry) FROM knox_authtoken`,
		`SELECT 'auth_user.last_login ' || quote(last_login) FROM auth_user`,
	} {
		rows, err := conn.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		rows.Close()
	}
	return out
}

// knoxSQLiteTimeRE is how Django stores a datetime in SQLite: text, naive
// UTC, the fraction only when not zero (or NULL).
var knoxSQLiteTimeRE = regexp.MustCompile(`^\S+ (NULL|'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?')$`)

// knoxCheckSQLiteTimes fails the test for any datetime of db not stored as
// Django stores it.
func knoxCheckSQLiteTimes(t *testing.T, db djangoDB) {
	t.Helper()
	if db.kind != "sqlite" {
		return
	}
	for _, v := range knoxSQLiteTimes(t, db) {
		if !knoxSQLiteTimeRE.MatchString(v) || strings.HasSuffix(v, ".000000'") {
			t.Errorf("%s: not Django's text format YYYY-MM-DD HH:MM:SS[.ffffff]", v)
		}
	}
}

// knoxCLI runs `caddy token …` and requires success.
func knoxCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := djangoCaddyCLI(t, "", append([]string{"token"}, args...)...)
	if code != 0 {
		t.Fatalf("caddy token %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// knoxCLIKey is the one knox key (prefix + 64 lowercase hex) in out.
func knoxCLIKey(t *testing.T, out, prefix string) string {
	t.Helper()
	re := regexp.MustCompile(`(?:^|[^0-9A-Za-z_])(` + regexp.QuoteMeta(prefix) + `[0-9a-f]{64})(?:$|[^0-9A-Za-z_])`)
	m := re.FindAllStringSubmatch(out, -1)
	if len(m) != 1 {
		t.Fatalf("output %q: want exactly one key %s<64 lowercase hex>", out, prefix)
	}
	return m[0][1]
}

// knoxWaitGone polls db (directly, every 2ms) until no row has the digest,
// and returns how long that took, or fails after limit.
func knoxWaitGone(t *testing.T, db djangoDB, digest string, limit time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	count := knoxCounter(t, db, `SELECT count(*) FROM knox_authtoken WHERE digest = `+knoxQuote(digest))
	for {
		n := count()
		if n == 0 {
			return time.Since(begin)
		}
		if time.Since(begin) > limit {
			t.Errorf("row %s…: still there after %v", digest[:12], limit)
			return time.Since(begin)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// knoxQuote is s as an SQL string literal (s is hex or a plain name).
func knoxQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// knoxCounter returns a function that runs the count query q on db, on a
// connection opened once.
func knoxCounter(t *testing.T, db djangoDB, q string) func() int64 {
	t.Helper()
	if db.kind == "postgres" {
		conn := pgConnect(t, db.dsn)
		return func() int64 {
			var n int64
			if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	conn, err := sql.Open("sqlite", "file:"+db.path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return func() int64 {
		var n int64
		if err := conn.QueryRow(q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
}

// knoxExec runs statements on db directly.
func knoxExec(t *testing.T, db djangoDB, stmts ...string) {
	t.Helper()
	if db.kind == "postgres" {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, db.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx) // nothing left connected: the database may be copied
		for _, s := range stmts {
			if _, err := conn.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		return
	}
	conn, err := sql.Open("sqlite", "file:"+db.path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, s := range stmts {
		if _, err := conn.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// knoxQueryStrings runs q, whose rows are one text column, on db directly.
func knoxQueryStrings(t *testing.T, db djangoDB, q string) []string {
	t.Helper()
	if db.kind == "postgres" {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, db.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return out
	}
	conn, err := sql.Open("sqlite", "file:"+db.path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
