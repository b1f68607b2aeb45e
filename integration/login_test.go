package integration

// The login endpoint (DRF's obtain_auth_token), logout and the throttles,
// through a real Caddy on a Django database of each store kind. Where DRF
// has an answer, the same requests go to DRF's own view (drfcheck.py login)
// on the same database, after Caddy has answered, and the two answers must
// be equal: status, body, Content-Type, Allow, WWW-Authenticate,
// Retry-After and Vary.

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/tokenauth/caddy-tokenauth/password"
)

// loginPath is where both Caddy and the Django project answer
// obtain_auth_token; loginThrottledPath is DRF's view with
// AnonRateThrottle at 3/min (tokenauth_site/urls.py).
const (
	loginPath          = "/api-token-auth/"
	loginThrottledPath = "/api-token-auth-throttled/"
	logoutPath         = "/api/logout/"
)

// loginRequest is one request, sent as it is to Caddy and to DRF.
type loginRequest struct {
	Method      string            `json:"method"`
	Path        string            `json:"path"`
	ContentType *string           `json:"content_type"` // nil: no Content-Type
	Body        []byte            `json:"body"`         // base64 in drfcheck's JSON
	Headers     map[string]string `json:"headers,omitempty"`
}

// loginResponse is one answer, from Caddy or from DRF.
type loginResponse struct {
	Status          int     `json:"status"`
	Body            []byte  `json:"body"`
	ContentType     *string `json:"content_type"`
	Allow           *string `json:"allow"`
	WWWAuthenticate *string `json:"www_authenticate"`
	RetryAfter      *string `json:"retry_after"`
	Vary            *string `json:"vary"`
}

func (r loginResponse) String() string {
	deref := func(p *string) string {
		if p == nil {
			return "(none)"
		}
		return fmt.Sprintf("%q", *p)
	}
	return fmt.Sprintf("%d body=%q Content-Type=%s Allow=%s WWW-Authenticate=%s Retry-After=%s Vary=%s",
		r.Status, r.Body, deref(r.ContentType), deref(r.Allow), deref(r.WWWAuthenticate), deref(r.RetryAfter), deref(r.Vary))
}

// token is the key of a {"token": key} body, or "".
func (r loginResponse) token() string {
	var v struct {
		Token string `json:"token"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &v) != nil {
		return ""
	}
	return v.Token
}

// loginClient sends every request on a new connection to 127.0.0.1 (so
// that Caddy sees the client as 127.0.0.1, whatever "localhost" resolves
// to, and no connection outlives a config reload).
var loginClient = &http.Client{
	Timeout:   2 * time.Minute,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// loginSend sends r to the Caddy test site.
func loginSend(t *testing.T, r loginRequest) loginResponse {
	t.Helper()
	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	path := r.Path
	if path == "" {
		path = loginPath
	}
	req, err := http.NewRequest(method, "http://127.0.0.1:9080"+path, bytes.NewReader(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "localhost:9080"
	if len(r.Body) == 0 {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	if r.ContentType != nil {
		req.Header["Content-Type"] = []string{*r.ContentType}
	}
	for k, v := range r.Headers {
		req.Header[http.CanonicalHeaderKey(k)] = []string{v}
	}
	resp, err := loginClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(name string) *string {
		if v, ok := resp.Header[http.CanonicalHeaderKey(name)]; ok {
			s := strings.Join(v, ", ")
			return &s
		}
		return nil
	}
	return loginResponse{
		Status:          resp.StatusCode,
		Body:            body,
		ContentType:     hdr("Content-Type"),
		Allow:           hdr("Allow"),
		WWWAuthenticate: hdr("WWW-Authenticate"),
		RetryAfter:      hdr("Retry-After"),
		Vary:            hdr("Vary"),
	}
}

// loginDRF sends the requests, in order, to DRF's views on db.
func loginDRF(t *testing.T, db djangoDB, reqs []loginRequest) []loginResponse {
	t.Helper()
	fixed := make([]loginRequest, len(reqs))
	for i, r := range reqs {
		if r.Method == "" {
			r.Method = http.MethodPost
		}
		if r.Path == "" {
			r.Path = loginPath
		}
		fixed[i] = r
	}
	var res []loginResponse
	djangoCheck(t, db, "login", map[string]any{"requests": fixed}, &res)
	if len(res) != len(reqs) {
		t.Fatalf("drfcheck.py login: %d answers for %d requests", len(res), len(reqs))
	}
	return res
}

// madeUser is a user drfcheck.py makeusers created.
type madeUser struct {
	Username string  `json:"username"`
	ID       int64   `json:"id"`
	Encoded  string  `json:"encoded"`
	Token    *string `json:"token"`
}

// newUser is a user for drfcheck.py makeusers.
type newUser struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	Hasher     string `json:"hasher,omitempty"`
	Iterations int    `json:"iterations,omitempty"`
	Active     bool   `json:"active"`
	Token      bool   `json:"token"`
}

// djangoMakeUsers creates the users with Django's hashers.
func djangoMakeUsers(t *testing.T, db djangoDB, users ...newUser) map[string]madeUser {
	t.Helper()
	var made []madeUser
	djangoCheck(t, db, "makeusers", map[string]any{"users": users}, &made)
	out := make(map[string]madeUser)
	for _, u := range made {
		out[u.Username] = u
	}
	return out
}

// djangoTokens is the key Django has for each user ("" for none).
func djangoTokens(t *testing.T, db djangoDB, usernames ...string) map[string]string {
	t.Helper()
	var res map[string]*string
	djangoCheck(t, db, "tokenof", map[string]any{"usernames": usernames}, &res)
	out := make(map[string]string)
	for _, u := range usernames {
		if k := res[u]; k != nil {
			out[u] = *k
		}
	}
	return out
}

// loginGlobal is globalOptions with extra lines in the global block.
func loginGlobal(extra string) string {
	return strings.Replace(globalOptions, "\tgrace_period 1ns\n", "\tgrace_period 1ns\n"+extra, 1)
}

// trustLocalProxy makes 127.0.0.1 a trusted proxy, so that Caddy takes the
// client IP from X-Forwarded-For.
const trustLocalProxy = "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}\n"

// loginStartCaddy serves http://localhost:9080 with token_auth on db and
// the given extra options (login, logout, throttles); requests that get
// through answer "user=<username>".
func loginStartCaddy(t *testing.T, global string, db djangoDB, options string) {
	t.Helper()
	tc := caddytest.NewTester(t)
	tc.InitServer(global+fmt.Sprintf(`
http://localhost:9080 {
	token_auth {
		%s
%s
	}
	respond "user={http.auth.user.username}"
}
`, db.storeLine(), options), "caddyfile")
	if db.kind == "postgres" {
		// Let go of the store's pool before the database is dropped.
		t.Cleanup(func() { _ = loadConfig(globalOptions + "http://localhost:9080 {\n\trespond ok\n}\n") })
	}
	if t.Failed() {
		t.FailNow()
	}
}

func ptr(s string) *string { return &s }

var (
	ctJSON = ptr("application/json")
	ctForm = ptr("application/x-www-form-urlencoded")
)

func jsonLogin(body string, headers ...string) loginRequest {
	return withHeaders(loginRequest{ContentType: ctJSON, Body: []byte(body)}, headers...)
}

func formLogin(body string, headers ...string) loginRequest {
	return withHeaders(loginRequest{ContentType: ctForm, Body: []byte(body)}, headers...)
}

func withMethod(method string, r loginRequest) loginRequest {
	r.Method = method
	return r
}

func withHeaders(r loginRequest, headers ...string) loginRequest {
	for i := 0; i+1 < len(headers); i += 2 {
		if r.Headers == nil {
			r.Headers = map[string]string{}
		}
		r.Headers[headers[i]] = headers[i+1]
	}
	return r
}

// multipartLogin is a multipart/form-data body with a fixed boundary, so
// that both servers get the same bytes.
func multipartLogin(t *testing.T, fields ...string) loginRequest {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.SetBoundary("tokenauth-test-boundary"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(fields); i += 2 {
		if err := mw.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	mw.Close()
	return loginRequest{ContentType: ptr(mw.FormDataContentType()), Body: buf.Bytes()}
}

// The login users: every one with Django 3.2's default hasher.
var loginUsers = []newUser{
	{Username: "alice", Password: "alice-pw", Active: true, Token: true},
	{Username: "carol", Password: "carol-pw", Active: true}, // no token yet
	{Username: "dave", Password: "dave-pw", Active: false},  // inactive
	{Username: "erin", Password: "erin-pw", Hasher: "unusable", Active: true},
	{Username: "frank", Password: " frank pw\t", Active: true}, // spaces at both ends
	{Username: "123", Password: "pw-123", Active: true},
}

func TestLoginMatchesDRF(t *testing.T) {
	djangoRequire(t)
	djangoEachStore(t, testLoginMatchesDRF)
}

func testLoginMatchesDRF(t *testing.T, kind string) {
	db := djangoNewDB(t, kind)
	users := djangoMakeUsers(t, db, loginUsers...)
	aliceKey := *users["alice"].Token
	loginStartCaddy(t, globalOptions, db, "\t\tlogin "+loginPath+"\n\t\tlogout "+logoutPath)

	type loginCase struct {
		name string
		req  loginRequest
		want int    // the status both must answer
		user string // for 200: whose token the body carries
	}
	cases := []loginCase{
		// Success: the user's token, the same one on every login.
		{"JSON", jsonLogin(`{"username":"alice","password":"alice-pw"}`), 200, "alice"},
		{"JSON, token created when missing", jsonLogin(`{"username":"carol","password":"carol-pw"}`), 200, "carol"},
		{"JSON, same key on repeat", jsonLogin(`{"username":"carol","password":"carol-pw"}`), 200, "carol"},
		{"JSON with charset", withHeaders(loginRequest{ContentType: ptr("application/json; charset=utf-8"), Body: []byte(`{"username":"alice","password":"alice-pw"}`)}), 200, "alice"},
		{"urlencoded", formLogin("username=alice&password=alice-pw"), 200, "alice"},
		{"multipart", multipartLogin(t, "username", "alice", "password", "alice-pw"), 200, "alice"},
		{"username trimmed", jsonLogin(`{"username":"  alice\t\n","password":"alice-pw"}`), 200, "alice"},
		{"password kept as sent", jsonLogin(`{"username":"frank","password":" frank pw\t"}`), 200, "frank"},
		{"number as username", jsonLogin(`{"username":123,"password":"pw-123"}`), 200, "123"},
		{"last form value wins", formLogin("username=nobody&username=alice&password=alice-pw"), 200, "alice"},
		{"last JSON member wins", jsonLogin(`{"username":"nobody","password":"alice-pw","username":"alice"}`), 200, "alice"},
		{"wildcard content type parsed as a form", loginRequest{ContentType: ptr("*/*"), Body: []byte("username=alice&password=alice-pw")}, 200, "alice"},
		{"indent=4", jsonLogin(`{"username":"alice","password":"alice-pw"}`, "Accept", "application/json; indent=4"), 200, "alice"},
		{"wildcard Accept", jsonLogin(`{"username":"alice","password":"alice-pw"}`, "Accept", "text/html, */*;q=0.1"), 200, "alice"},
		{"other scheme is anonymous", jsonLogin(`{"username":"alice","password":"alice-pw"}`, "Authorization", "Basic YWxpY2U6YWxpY2UtcHc="), 200, "alice"},
		{"valid token, login as another user", jsonLogin(`{"username":"carol","password":"carol-pw"}`, "Authorization", "Token "+aliceKey), 200, "carol"},

		// Refused credentials: one message for all.
		{"wrong password", jsonLogin(`{"username":"alice","password":"alice-pw2"}`), 400, ""},
		{"password not trimmed", jsonLogin(`{"username":"frank","password":"frank pw"}`), 400, ""},
		{"unknown user", jsonLogin(`{"username":"zed","password":"alice-pw"}`), 400, ""},
		{"inactive user, right password", jsonLogin(`{"username":"dave","password":"dave-pw"}`), 400, ""},
		{"unusable password", jsonLogin(`{"username":"erin","password":"erin-pw"}`), 400, ""},

		// Field errors, username first.
		{"missing password", jsonLogin(`{"username":"alice"}`), 400, ""},
		{"missing username, null password", jsonLogin(`{"password":null}`), 400, ""},
		{"empty object", jsonLogin(`{}`), 400, ""},
		{"empty body, no content type", loginRequest{}, 400, ""},
		{"empty body, JSON", jsonLogin(``), 400, ""},
		{"empty body, form", formLogin(``), 400, ""},
		{"blank username", jsonLogin(`{"username":"","password":"x"}`), 400, ""},
		{"whitespace username", jsonLogin(`{"username":" \t ","password":"x"}`), 400, ""},
		{"blank password", jsonLogin(`{"username":"alice","password":""}`), 400, ""},
		{"null username", jsonLogin(`{"username":null,"password":"x"}`), 400, ""},
		{"null both", jsonLogin(`{"username":null,"password":null}`), 400, ""},
		{"boolean username", jsonLogin(`{"username":true,"password":"x"}`), 400, ""},
		{"list password", jsonLogin(`{"username":"alice","password":["x"]}`), 400, ""},
		{"objects", jsonLogin(`{"username":{},"password":{"a":1}}`), 400, ""},
		{"errors in declaration order", jsonLogin(`{"password":false,"username":false}`), 400, ""},
		{"NUL in username", jsonLogin(`{"username":"al\u0000ice","password":"x"}`), 400, ""},
		{"NUL in password", jsonLogin(`{"username":"alice","password":"x\u0000"}`), 400, ""},
		{"form blank fields", formLogin("username=&password="), 400, ""},
		{"form missing password", formLogin("username=alice"), 400, ""},
		{"multipart missing username", multipartLogin(t, "password", "x"), 400, ""},
		{"surrogate in username", jsonLogin(`{"username":"a\ud800","password":"x"}`), 400, ""},

		// Not an object.
		{"list body", jsonLogin(`["alice","alice-pw"]`), 400, ""},
		{"string body", jsonLogin(`"alice"`), 400, ""},
		{"int body", jsonLogin(`12`), 400, ""},
		{"float body", jsonLogin(`1.5`), 400, ""},
		{"bool body", jsonLogin(`true`), 400, ""},
		{"null body", jsonLogin(`null`), 400, ""},

		// Malformed JSON: Python's json error text.
		{"truncated JSON", jsonLogin(`{"username":`), 400, ""},
		{"trailing comma", jsonLogin(`{"username":"alice",}`), 400, ""},
		{"single quotes", jsonLogin(`{'username':'alice'}`), 400, ""},
		{"extra data", jsonLogin(`{} {}`), 400, ""},
		{"NaN", jsonLogin(`{"username":NaN,"password":"x"}`), 400, ""},
		{"invalid UTF-8", jsonLogin("{\"username\":\"\xff\",\"password\":\"x\"}"), 400, ""},
		{"byte order mark", jsonLogin("\xef\xbb\xbf{}"), 400, ""},
		{"whitespace only", jsonLogin("  \n"), 400, ""},

		// Media types.
		{"text/plain", loginRequest{ContentType: ptr("text/plain"), Body: []byte("username=alice")}, 415, ""},
		{"text/plain with charset", loginRequest{ContentType: ptr("text/plain; charset=utf-8"), Body: []byte("x")}, 415, ""},
		{"application/xml", loginRequest{ContentType: ptr("application/xml"), Body: []byte("<a/>")}, 415, ""},
		{"body without content type", loginRequest{Body: []byte(`{"username":"alice","password":"alice-pw"}`)}, 415, ""},
		{"upper-case content type", loginRequest{ContentType: ptr("Application/JSON"), Body: []byte(`{"username":"alice","password":"alice-pw"}`)}, 200, "alice"},
		{"form with invalid percent escape", formLogin("username=%zz&password=x&username="), 400, ""},
		{"form with semicolon", formLogin("username=alice;x=1&password="), 400, ""},
		{"multipart without boundary", loginRequest{ContentType: ptr("multipart/form-data"), Body: []byte("x")}, 400, ""},

		// Methods, negotiation and authentication before the view.
		{"GET", loginRequest{Method: http.MethodGet}, 405, ""},
		{"PUT", withMethod(http.MethodPut, jsonLogin(`{"username":"alice","password":"alice-pw"}`)), 405, ""},
		{"DELETE", loginRequest{Method: http.MethodDelete}, 405, ""},
		{"OPTIONS", loginRequest{Method: http.MethodOptions}, 200, ""},
		{"HTML only", jsonLogin(`{"username":"alice","password":"alice-pw"}`, "Accept", "text/html"), 406, ""},
		{"406 before 405", loginRequest{Method: http.MethodGet, Headers: map[string]string{"Accept": "application/xml"}}, 406, ""},
		{"406 before 401", jsonLogin(`{}`, "Accept", "text/html", "Authorization", "Token nope"), 406, ""},
		{"bad token", jsonLogin(`{"username":"alice","password":"alice-pw"}`, "Authorization", "Token nope"), 401, ""},
		{"keyword alone", jsonLogin(`{"username":"alice","password":"alice-pw"}`, "Authorization", "Token"), 401, ""},
		{"token with spaces", jsonLogin(`{}`, "Authorization", "Token a b"), 401, ""},
		{"401 before 405", loginRequest{Method: http.MethodGet, Headers: map[string]string{"Authorization": "Token nope"}}, 401, ""},
		{"401 in the negotiated indent", jsonLogin(`{}`, "Authorization", "Token nope", "Accept", "application/json; indent=2"), 401, ""},
		{"400 in the negotiated indent", jsonLogin(`{}`, "Accept", "application/json; indent=3"), 400, ""},
		{"405 in the negotiated indent", loginRequest{Method: http.MethodGet, Headers: map[string]string{"Accept": "application/json; indent=4"}}, 405, ""},
	}

	// Caddy first, then DRF on the same database: DRF sees the tokens
	// Caddy made, so a success must carry the same key from both.
	caddy := make([]loginResponse, len(cases))
	for i, c := range cases {
		caddy[i] = loginSend(t, c.req)
	}
	reqs := make([]loginRequest, len(cases))
	for i, c := range cases {
		reqs[i] = c.req
	}
	drf := loginDRF(t, db, reqs)
	keys := djangoTokens(t, db, "alice", "carol", "frank", "123")
	if keys["alice"] != aliceKey {
		t.Errorf("alice's Django token changed from %s to %s", aliceKey, keys["alice"])
	}

	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, want := caddy[i], drf[i]
			t.Logf("request %s %q %q %q\nCaddy %v", c.req.Method, deref(c.req.ContentType), c.req.Body, c.req.Headers, got)
			if got.String() != want.String() {
				t.Errorf("Caddy differs from DRF\nCaddy %v\nDRF   %v", got, want)
			}
			if want.Status != c.want {
				t.Errorf("DRF answered %d, the test expects %d: %v", want.Status, c.want, want)
			}
			if c.user != "" {
				if key := got.token(); key == "" || key != keys[c.user] {
					t.Errorf("Caddy's token %q, Django's token for %s %q", key, c.user, keys[c.user])
				}
			}
		})
	}
}

func deref(p *string) string {
	if p == nil {
		return "(none)"
	}
	return *p
}

func TestLoginLogoutLimitsAndThrottles(t *testing.T) {
	djangoRequire(t)
	djangoEachStore(t, testLoginLogoutLimitsAndThrottles)
}

func testLoginLogoutLimitsAndThrottles(t *testing.T, kind string) {
	db := djangoNewDB(t, kind)
	users := djangoMakeUsers(t, db,
		newUser{Username: "alice", Password: "alice-pw", Active: true, Token: true},
		newUser{Username: "grace", Password: "grace-pw", Active: true})
	aliceKey := *users["alice"].Token
	graceLogin := jsonLogin(`{"username":"grace","password":"grace-pw"}`)
	fieldErrors := jsonLogin(`{}`)
	get := func(key string) loginRequest {
		r := loginRequest{Method: http.MethodGet, Path: "/api/items"}
		if key != "" {
			r.Headers = map[string]string{"Authorization": "Token " + key}
		}
		return r
	}
	expect := func(t *testing.T, what string, got loginResponse, status int, body string) {
		t.Helper()
		if got.Status != status || string(got.Body) != body {
			t.Errorf("%s: got %v, want %d %s", what, got, status, body)
		}
	}
	const (
		invalidToken = `{"detail":"Invalid token."}`
		notProvided  = `{"detail":"Authentication credentials were not provided."}`
		required     = `{"username":["This field is required."],"password":["This field is required."]}`
		throttled60  = `{"detail":"Request was throttled. Expected available in 60 seconds."}`
	)

	t.Run("logout deletes the caller's token", func(t *testing.T) {
		loginStartCaddy(t, globalOptions, db, "\t\tlogin "+loginPath+"\n\t\tlogout "+logoutPath)
		key := loginSend(t, graceLogin).token()
		if key == "" || key != djangoTokens(t, db, "grace")["grace"] {
			t.Fatalf("login gave %q, Django has %q", key, djangoTokens(t, db, "grace")["grace"])
		}
		expect(t, "the new token", loginSend(t, get(key)), 200, "user=grace")
		expect(t, "anonymous logout", loginSend(t, loginRequest{Path: logoutPath}), 401, notProvided)
		got := loginSend(t, loginRequest{Method: http.MethodGet, Path: logoutPath, Headers: map[string]string{"Authorization": "Token " + key}})
		expect(t, "GET logout", got, 405, `{"detail":"Method \"GET\" not allowed."}`)

		got = loginSend(t, loginRequest{Path: logoutPath, Headers: map[string]string{"Authorization": "Token " + key}})
		if got.Status != http.StatusNoContent || len(got.Body) != 0 || got.ContentType != nil {
			t.Errorf("logout: got %v, want 204 with no body and no Content-Type", got)
		}
		got = loginSend(t, get(key))
		expect(t, "the token after logout", got, 401, invalidToken)
		if deref(got.WWWAuthenticate) != "Token" || deref(got.ContentType) != "application/json" {
			t.Errorf("the token after logout: %v", got)
		}
		expect(t, "second logout", loginSend(t, loginRequest{Path: logoutPath, Headers: map[string]string{"Authorization": "Token " + key}}), 401, invalidToken)
		if k, ok := djangoTokens(t, db, "grace")["grace"]; ok {
			t.Errorf("Django still has grace's token %s", k)
		}
		if drf := djangoDRFRequests(t, db, [][]string{{"Token " + key}})[0]; drf.Status != 401 || string(drf.Body) != invalidToken {
			t.Errorf("DRF on the logged-out token: %v", drf)
		}
		expect(t, "alice's token", loginSend(t, get(aliceKey)), 200, "user=alice")

		again := loginSend(t, graceLogin).token()
		if again == "" || again == key || again != djangoTokens(t, db, "grace")["grace"] {
			t.Errorf("login after logout gave %q (old %s, Django's %q)", again, key, djangoTokens(t, db, "grace")["grace"])
		}
	})

	t.Run("max_body", func(t *testing.T) {
		loginStartCaddy(t, globalOptions, db, "\t\tlogin "+loginPath+" {\n\t\t\tmax_body 1KiB\n\t\t}")
		pad := func(n int) loginRequest {
			prefix, suffix := `{"username":"","password":"`, `"}`
			return jsonLogin(prefix + strings.Repeat("x", n-len(prefix)-len(suffix)) + suffix)
		}
		expect(t, "1024 bytes", loginSend(t, pad(1024)), 400, `{"username":["This field may not be blank."]}`)
		got := loginSend(t, pad(1025))
		expect(t, "1025 bytes", got, 413, `{"detail":"Request body is larger than 1024 bytes."}`)
		if deref(got.ContentType) != "application/json" {
			t.Errorf("413 Content-Type %s", deref(got.ContentType))
		}
		expect(t, "8000 bytes", loginSend(t, pad(8000)), 413, `{"detail":"Request body is larger than 1024 bytes."}`)
	})

	t.Run("throttle 3/min as DRF's AnonRateThrottle", func(t *testing.T) {
		loginStartCaddy(t, globalOptions, db, "\t\tlogin "+loginPath+" {\n\t\t\tthrottle 3/min\n\t\t}")
		seq := []loginRequest{fieldErrors, fieldErrors, fieldErrors, graceLogin}
		var caddy []loginResponse
		for _, r := range seq {
			caddy = append(caddy, loginSend(t, r))
		}
		forged := withHeaders(fieldErrors, "X-Forwarded-For", "10.9.9.9")
		caddyForged := loginSend(t, forged)
		expect(t, "protected route", loginSend(t, get(aliceKey)), 200, "user=alice")

		drfSeq := make([]loginRequest, 0, len(seq)+1)
		for _, r := range append(slices.Clone(seq), forged) {
			r.Path = loginThrottledPath
			drfSeq = append(drfSeq, r)
		}
		drf := loginDRF(t, db, drfSeq)
		for i := range seq {
			if caddy[i].String() != drf[i].String() {
				t.Errorf("request %d:\nCaddy %v\nDRF   %v", i+1, caddy[i], drf[i])
			}
		}
		expect(t, "4th request", caddy[3], 429, throttled60)
		if deref(caddy[3].RetryAfter) != "60" {
			t.Errorf("Retry-After %s, want 60", deref(caddy[3].RetryAfter))
		}
		// DRF keys anonymous clients by X-Forwarded-For when present (a
		// forged one gets a fresh budget); Caddy keys by its client IP,
		// which without trusted_proxies is the peer address.
		expect(t, "forged X-Forwarded-For", caddyForged, 429, throttled60)
		if drf[4].Status != 400 {
			t.Errorf("DRF with a forged X-Forwarded-For: %v (expected DRF's fresh budget, 400)", drf[4])
		}
		t.Logf("forged X-Forwarded-For: Caddy %v; DRF %v", caddyForged, drf[4])
	})

	t.Run("throttle keyed by X-Forwarded-For from a trusted proxy", func(t *testing.T) {
		// A reload keeps a budget; a config without it lets it go. Start
		// from a fresh one.
		loginStartCaddy(t, globalOptions, db, "\t\tlogin "+loginPath)
		loginStartCaddy(t, loginGlobal(trustLocalProxy), db, "\t\tlogin "+loginPath+" {\n\t\t\tthrottle 3/min\n\t\t}")
		one := withHeaders(fieldErrors, "X-Forwarded-For", "203.0.113.1")
		two := withHeaders(fieldErrors, "X-Forwarded-For", "203.0.113.2")
		for i := 1; i <= 3; i++ {
			expect(t, fmt.Sprintf("client 1, request %d", i), loginSend(t, one), 400, required)
		}
		expect(t, "client 1, request 4", loginSend(t, one), 429, throttled60)
		for i := 1; i <= 3; i++ {
			expect(t, fmt.Sprintf("client 2, request %d", i), loginSend(t, two), 400, required)
		}
		expect(t, "client 2, request 4", loginSend(t, two), 429, throttled60)
		expect(t, "the proxy itself", loginSend(t, fieldErrors), 400, required)
	})

	t.Run("failure_throttle", func(t *testing.T) {
		loginStartCaddy(t, globalOptions, db, "\t\tlogin "+loginPath+"\n\t\tfailure_throttle 3/min")
		// Unknown keys of the shape DRF makes (40 lowercase hex), so that
		// each one is looked up and refused.
		guess := func(i int) string { return fmt.Sprintf("%040x", 0xdead0000+i) }
		for i := 1; i <= 3; i++ {
			expect(t, fmt.Sprintf("guess %d", i), loginSend(t, get(guess(i))), 401, invalidToken)
		}
		for _, r := range []loginRequest{get(guess(4)), withHeaders(fieldErrors, "Authorization", "Token "+guess(5))} {
			got := loginSend(t, r)
			if got.Status != 429 || !strings.HasPrefix(string(got.Body), `{"detail":"Request was throttled. Expected available in `) ||
				got.RetryAfter == nil || deref(got.ContentType) != "application/json" {
				t.Errorf("%s %s %v after 3 refused tokens: %v, want 429", r.Method, r.Path, r.Headers, got)
			}
		}
		// A valid token from the same client still passes: a client over
		// its budget cannot lock out the others behind its NAT.
		if got := loginSend(t, get(aliceKey)); got.Status != 200 {
			t.Errorf("a valid token after 3 refused ones: %v, want 200", got)
		}
		expect(t, "anonymous", loginSend(t, get("")), 401, notProvided)
		expect(t, "login without a token", loginSend(t, fieldErrors), 400, required)
	})
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

// An unknown username is checked against a default-cost value
// (password.DummyEncoded) through the same code as a wrong password for a
// user with a default pbkdf2_sha256 hash: the login endpoint does not tell
// which usernames exist by its timing. Wall-clock through real Caddy, to
// 10 %; the 2 % bound is login_timing_test.go's, in CPU time.
func TestLoginTimingUnknownUserMatchesWrongPassword(t *testing.T) {
	s := newSite(t)
	encoded, err := password.Make("the right password", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(encoded, "pbkdf2_sha256$1000000$") {
		t.Fatalf("password.Make gave %q, want Django 5.2's default", encoded[:25])
	}
	db, err := sql.Open("sqlite", s.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE auth_user SET password = ? WHERE username = 'alice'`, encoded); err != nil {
		t.Fatal(err)
	}
	db.Close()
	loginStartCaddy(t, globalOptions, djangoDB{kind: "sqlite", path: s.dbPath}, "\t\tlogin "+loginPath)

	// Each request costs a full 1,000,000-iteration PBKDF2 run, some 2 s
	// under -race on a busy machine: fewer samples there.
	n := 9
	if raceEnabled() {
		n = 7
	}
	timed := func(body string) time.Duration {
		start := time.Now()
		got := loginSend(t, jsonLogin(body))
		took := time.Since(start)
		if got.Status != 400 || string(got.Body) != `{"non_field_errors":["Unable to log in with provided credentials."]}` {
			t.Fatalf("%s: %v", body, got)
		}
		return took
	}
	median := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[len(d)/2]
	}
	measure := func() (unknown, wrong time.Duration) {
		var u, w []time.Duration
		for i := range n {
			// Interleaved, so that a change in the machine's load hits both.
			u = append(u, timed(fmt.Sprintf(`{"username":"nobody%d","password":"the wrong password"}`, i)))
			w = append(w, timed(`{"username":"alice","password":"the wrong password"}`))
		}
		t.Logf("unknown user:   %v\nwrong password: %v", u, w)
		return median(u), median(w)
	}
	timed(`{"username":"alice","password":"warm up"}`)
	unknown, wrong := measure()
	ratio := float64(unknown) / float64(wrong)
	t.Logf("median unknown user %v, wrong password %v, ratio %.3f", unknown, wrong, ratio)
	if ratio < 0.9 || ratio > 1.1 {
		// One retry: other processes share the CPUs, and a burst of their
		// load during a few samples can tip one median.
		unknown, wrong = measure()
		ratio = float64(unknown) / float64(wrong)
		t.Logf("again: median unknown user %v, wrong password %v, ratio %.3f", unknown, wrong, ratio)
		if ratio < 0.9 || ratio > 1.1 {
			t.Errorf("unknown user takes %v, wrong password %v: not within 10%%", unknown, wrong)
		}
	}
}
