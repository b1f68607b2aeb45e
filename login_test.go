package tokenauth

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokenauth/caddy-tokenauth/password"
	"github.com/tokenauth/caddy-tokenauth/store"
)

const testPassword = "correct horse"

// loginFixture adds to newFixture: carol (active, password testPassword,
// no token yet), dave (inactive, same password), erin (unusable password),
// and alice's password set to testPassword.
func loginFixture(t testing.TB, login *Login, configure func(*TokenAuth)) *fixture {
	t.Helper()
	f := newFixture(t, func(h *TokenAuth) {
		h.Login = login
		h.Logout = "/api/logout/"
		if configure != nil {
			configure(h)
		}
	}, nil)
	enc, err := password.EncodePBKDF2SHA256(testPassword, "abcdefghijklmnopqrstuv", 1000)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, u := range []store.NewUser{
		{Username: "carol", Password: enc, Active: true},
		{Username: "dave", Password: enc, Active: false},
		{Username: "erin", Password: "!" + enc, Active: true},
	} {
		if err := f.h.store.(store.Admin).AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.h.store.(store.Admin).SetPassword(ctx, "alice", enc); err != nil {
		t.Fatal(err)
	}
	return f
}

type httpResult struct {
	code   int
	body   string
	header http.Header
	next   bool
}

func (f *fixture) send(t testing.TB, method, path, contentType, body string, headers ...string) httpResult {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	req.RemoteAddr = "192.0.2.10:5555"
	rec := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rec, nil)
	caddyhttp.SetVar(req.Context(), caddyhttp.ClientIPVarKey, "192.0.2.10")
	var res httpResult
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		res.next = true
		return nil
	})
	if err := f.h.ServeHTTP(rec, req, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	res.code, res.body, res.header = rec.Code, rec.Body.String(), rec.Header()
	return res
}

func multipartBody(t testing.TB, fields map[string]string) (string, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	mw.Close()
	return mw.FormDataContentType(), buf.String()
}

const jsonCT = "application/json"

func TestLoginAnswersLikeObtainAuthToken(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/api/auth-token/"}, nil)
	aliceToken := `{"token":"` + f.alice + `"}`
	badLogin := `{"non_field_errors":["Unable to log in with provided credentials."]}`
	form := url.Values{"username": {"alice"}, "password": {testPassword}}.Encode()
	mpCT, mpBody := multipartBody(t, map[string]string{"username": "alice", "password": testPassword})

	tests := []struct {
		name, ct, body string
		code           int
		want           string
	}{
		{"JSON", jsonCT, `{"username":"alice","password":"` + testPassword + `"}`, 200, aliceToken},
		{"JSON with charset", "application/json; charset=utf-8", `{"username":"alice","password":"` + testPassword + `"}`, 200, aliceToken},
		{"form", "application/x-www-form-urlencoded", form, 200, aliceToken},
		{"multipart", mpCT, mpBody, 200, aliceToken},
		{"username trimmed", jsonCT, `{"username":"  alice\t","password":"` + testPassword + `"}`, 200, aliceToken},
		{"password not trimmed", jsonCT, `{"username":"alice","password":" ` + testPassword + `"}`, 400, badLogin},
		{"wrong password", jsonCT, `{"username":"alice","password":"nope"}`, 400, badLogin},
		{"username is case-sensitive", jsonCT, `{"username":"ALICE","password":"` + testPassword + `"}`, 400, badLogin},
		{"unknown user", jsonCT, `{"username":"zed","password":"` + testPassword + `"}`, 400, badLogin},
		{"inactive user", jsonCT, `{"username":"dave","password":"` + testPassword + `"}`, 400, badLogin},
		{"unusable password", jsonCT, `{"username":"erin","password":"` + testPassword + `"}`, 400, badLogin},
		{"number as username", jsonCT, `{"username":123,"password":"x"}`, 400, badLogin},
		{"missing password", jsonCT, `{"username":"alice"}`, 400, `{"password":["This field is required."]}`},
		{"empty object", jsonCT, `{}`, 400, `{"username":["This field is required."],"password":["This field is required."]}`},
		{"empty body, no content type", "", "", 400, `{"username":["This field is required."],"password":["This field is required."]}`},
		{"body without content type", "", `{"username":"alice"}`, 415, `{"detail":"Unsupported media type \"\" in request."}`},
		{"media type in capitals", "Application/JSON", `{"username":"alice","password":"` + testPassword + `"}`, 200, aliceToken},
		{"lone surrogate", jsonCT, `{"username":"a\ud800","password":"x"}`, 400, `{"username":["Surrogate characters are not allowed: U+D800."]}`},
		{"surrogate pair is a character", jsonCT, `{"username":"\ud83d\ude00","password":"x"}`, 400, badLogin},
		{"NUL and surrogate", jsonCT, `{"username":"x","password":"\u0000\udfff"}`, 400, `{"password":["Null characters are not allowed.","Surrogate characters are not allowed: U+DFFF."]}`},
		{"duplicate members, last wins", jsonCT, `{"username":"zed","username":"alice","password":"` + testPassword + `"}`, 200, aliceToken},
		{"form: invalid escape kept, last value wins", "application/x-www-form-urlencoded", "username=%zz&password=x&username=", 400, `{"username":["This field may not be blank."]}`},
		{"form: semicolon is no separator", "application/x-www-form-urlencoded", "username=alice;x=1&password=", 400, `{"password":["This field may not be blank."]}`},
		{"form: plus is a space", "application/x-www-form-urlencoded", "username=+alice+&password=" + url.QueryEscape(testPassword), 200, aliceToken},
		{"blank username", jsonCT, `{"username":"","password":"x"}`, 400, `{"username":["This field may not be blank."]}`},
		{"whitespace username", jsonCT, `{"username":"   ","password":"x"}`, 400, `{"username":["This field may not be blank."]}`},
		{"blank password", jsonCT, `{"username":"alice","password":""}`, 400, `{"password":["This field may not be blank."]}`},
		{"whitespace password is not blank", jsonCT, `{"username":"alice","password":"   "}`, 400, badLogin},
		{"null username", jsonCT, `{"username":null,"password":"x"}`, 400, `{"username":["This field may not be null."]}`},
		{"boolean username", jsonCT, `{"username":true,"password":"x"}`, 400, `{"username":["Not a valid string."]}`},
		{"list password", jsonCT, `{"username":"alice","password":["x"]}`, 400, `{"password":["Not a valid string."]}`},
		{"object username", jsonCT, `{"username":{},"password":{}}`, 400, `{"username":["Not a valid string."],"password":["Not a valid string."]}`},
		{"NUL in username", jsonCT, `{"username":"al\u0000ice","password":"x"}`, 400, `{"username":["Null characters are not allowed."]}`},
		{"form blank fields", "application/x-www-form-urlencoded", "username=&password=", 400, `{"username":["This field may not be blank."],"password":["This field may not be blank."]}`},
		{"list body", jsonCT, `["alice","pw"]`, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}`},
		{"string body", jsonCT, `"alice"`, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got str."]}`},
		{"number body", jsonCT, `12`, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got int."]}`},
		{"null body", jsonCT, `null`, 400, `{"non_field_errors":["No data provided"]}`},
		{"malformed JSON", jsonCT, `{"username":`, 400, `{"detail":"JSON parse error - Expecting value: line 1 column 13 (char 12)"}`},
		{"unsupported media type", "text/plain", "username=alice", 415, `{"detail":"Unsupported media type \"text/plain\" in request."}`},
		{"unsupported media type with params", "text/plain; charset=utf-8", "x", 415, `{"detail":"Unsupported media type \"text/plain; charset=utf-8\" in request."}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.send(t, http.MethodPost, "/api/auth-token/", tt.ct, tt.body)
			if r.code != tt.code || r.body != tt.want {
				t.Fatalf("got %d %s\nwant %d %s", r.code, r.body, tt.code, tt.want)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if a := r.header.Get("Allow"); a != "POST, OPTIONS" {
				t.Errorf("Allow %q", a)
			}
			if r.next {
				t.Error("the login request reached the next handler")
			}
		})
	}
}

func TestLoginCreatesAMissingTokenAndReturnsItAgain(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/login"}, nil)
	body := `{"username":"carol","password":"` + testPassword + `"}`
	first := f.send(t, http.MethodPost, "/login", jsonCT, body)
	second := f.send(t, http.MethodPost, "/login", jsonCT, body)
	if first.code != 200 || first.body != second.body || len(first.body) != len(`{"token":""}`)+40 {
		t.Fatalf("first %d %s, second %s", first.code, first.body, second.body)
	}
	key := strings.TrimSuffix(strings.TrimPrefix(first.body, `{"token":"`), `"}`)
	if r := f.do(t, "Token "+key); r.code != 200 || r.username != "carol" {
		t.Fatalf("the new token does not authenticate: %+v", r)
	}
}

func TestLoginMethodsNegotiationAndAuthentication(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/login"}, nil)
	good := `{"username":"alice","password":"` + testPassword + `"}`
	tests := []struct {
		name, method, body string
		headers            []string
		code               int
		want               string
	}{
		{"GET is 405", http.MethodGet, "", nil, 405, `{"detail":"Method \"GET\" not allowed."}`},
		{"PUT is 405", http.MethodPut, good, nil, 405, `{"detail":"Method \"PUT\" not allowed."}`},
		{"OPTIONS describes the endpoint", http.MethodOptions, "", nil, 200, `{"name":"Obtain Auth Token","description":"","renders":["application/json"],"parses":["application/x-www-form-urlencoded","multipart/form-data","application/json"],"actions":{"POST":{"username":{"type":"string","required":true,"read_only":false,"label":"Username"},"password":{"type":"string","required":true,"read_only":false,"label":"Password"},"token":{"type":"string","required":false,"read_only":true,"label":"Token"}}}}`}, // DRF 3.14's answer (integration/login_test.go compares Caddy's with real DRF's)
		{"HTML only is 406", http.MethodPost, good, []string{"Accept", "text/html"}, 406, `{"detail":"Could not satisfy the request Accept header."}`},
		{"406 comes before 405", http.MethodGet, "", []string{"Accept", "application/xml"}, 406, `{"detail":"Could not satisfy the request Accept header."}`},
		{"406 comes before 401", http.MethodPost, good, []string{"Accept", "text/html", "Authorization", "Token nope"}, 406, `{"detail":"Could not satisfy the request Accept header."}`},
		{"wildcard Accept", http.MethodPost, good, []string{"Accept", "text/html, */*;q=0.1"}, 200, `{"token":"` + f.alice + `"}`},
		{"indent requested", http.MethodPost, good, []string{"Accept", "application/json; indent=4"}, 200, "{\n    \"token\": \"" + f.alice + "\"\n}"},
		{"bad token is 401 even on login", http.MethodPost, good, []string{"Authorization", "Token nope"}, 401, `{"detail":"Invalid token."}`},
		{"401 in the negotiated indent", http.MethodPost, good, []string{"Authorization", "Token nope", "Accept", "application/json; indent=2"}, 401, "{\n  \"detail\": \"Invalid token.\"\n}"},
		{"401 comes before 405", http.MethodGet, "", []string{"Authorization", "Token nope"}, 401, `{"detail":"Invalid token."}`},
		{"malformed header is 401", http.MethodPost, good, []string{"Authorization", "Token"}, 401, `{"detail":"Invalid token header. No credentials provided."}`},
		{"valid token may log in again", http.MethodPost, good, []string{"Authorization", "Token " + f.alice}, 200, `{"token":"` + f.alice + `"}`},
		{"other scheme is anonymous", http.MethodPost, good, []string{"Authorization", "Basic Zm9vOmJhcg=="}, 200, `{"token":"` + f.alice + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.send(t, tt.method, "/login", jsonCT, tt.body, tt.headers...)
			if r.code != tt.code || r.body != tt.want {
				t.Fatalf("got %d %q\nwant %d %q", r.code, r.body, tt.code, tt.want)
			}
			if a := r.header.Get("Allow"); a != "POST, OPTIONS" {
				t.Errorf("Allow %q", a)
			}
		})
	}
}

func TestLoginBodyLimit(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/login", MaxBody: 1024}, nil)
	big := `{"username":"alice","password":"` + strings.Repeat("x", 2000) + `"}`
	r := f.send(t, http.MethodPost, "/login", jsonCT, big)
	if r.code != 413 || r.body != `{"detail":"Request body is larger than 1024 bytes."}` {
		t.Fatalf("got %d %s", r.code, r.body)
	}
}

func TestLoginThrottle(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/login", Throttle: "3/min"}, nil)
	frozen := time.Now()
	f.h.Login.throttle.SetClock(func() time.Time { return frozen })
	for i := 1; i <= 2; i++ {
		if r := f.send(t, http.MethodPost, "/login", jsonCT, `{"username":"alice","password":"x"}`); r.code != 400 {
			t.Fatalf("request %d: %d %s", i, r.code, r.body)
		}
	}
	// Requests to protected routes from the same client are not counted
	// against the login budget: the third login still goes through.
	for range 5 {
		if r := f.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+f.alice); r.code != 200 {
			t.Fatalf("protected route: %d %s", r.code, r.body)
		}
	}
	if r := f.send(t, http.MethodPost, "/login", jsonCT, `{"username":"alice","password":"x"}`); r.code != 400 {
		t.Fatalf("3rd login after protected requests: %d %s", r.code, r.body)
	}
	r := f.send(t, http.MethodPost, "/login", jsonCT, `{"username":"alice","password":"`+testPassword+`"}`)
	if r.code != 429 || r.header.Get("Retry-After") != "60" || r.body != `{"detail":"Request was throttled. Expected available in 60 seconds."}` {
		t.Fatalf("4th: %d %s Retry-After %q", r.code, r.body, r.header.Get("Retry-After"))
	}
}

// The handler takes the client IP from Caddy alone (here pinned, as Caddy
// sets it), never from a header the client writes; the same against real
// Caddy, with and without trusted_proxies, is in integration/login_test.go.
func TestLoginThrottleIgnoresForgedForwardedFor(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/login", Throttle: "1/min"}, nil)
	f.send(t, http.MethodPost, "/login", jsonCT, `{}`)
	r := f.send(t, http.MethodPost, "/login", jsonCT, `{}`, "X-Forwarded-For", "10.9.9.9")
	if r.code != 429 {
		t.Fatalf("a forged X-Forwarded-For got a fresh budget: %d %s", r.code, r.body)
	}
}

func TestLoginUpgradesOutdatedHashOnlyWhenAsked(t *testing.T) {
	for _, upgrade := range []bool{false, true} {
		f := loginFixture(t, &Login{Path: "/login", UpgradeHashes: upgrade}, nil)
		r := f.send(t, http.MethodPost, "/login", jsonCT, `{"username":"carol","password":"`+testPassword+`"}`)
		if r.code != 200 {
			t.Fatalf("login: %d %s", r.code, r.body)
		}
		u, err := f.h.store.(store.Admin).UserByName(context.Background(), "carol")
		if err != nil {
			t.Fatal(err)
		}
		upgraded := strings.HasPrefix(u.Password, "pbkdf2_sha256$1000000$")
		if upgraded != upgrade {
			t.Fatalf("upgrade_hashes=%v: stored %q", upgrade, u.Password[:30])
		}
		if ok, _ := password.Check(testPassword, u.Password); !ok {
			t.Fatal("the stored password no longer matches")
		}
	}
}

func TestLogoutDeletesTheCallersToken(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/login"}, nil)
	if r := f.send(t, http.MethodGet, "/api/logout/", "", "", "Authorization", "Token "+f.alice); r.code != 405 {
		t.Fatalf("GET logout: %d %s", r.code, r.body)
	}
	if r := f.send(t, http.MethodPost, "/api/logout/", "", ""); r.code != 401 || r.body != `{"detail":"Authentication credentials were not provided."}` {
		t.Fatalf("anonymous logout: %d %s", r.code, r.body)
	}
	r := f.send(t, http.MethodPost, "/api/logout/", "", "", "Authorization", "Token "+f.alice)
	if r.code != 204 || r.body != "" || r.next {
		t.Fatalf("logout: %d %q next=%v", r.code, r.body, r.next)
	}
	if r := f.do(t, "Token "+f.alice); r.code != 401 || r.body != `{"detail":"Invalid token."}` {
		t.Fatalf("token still works after logout: %+v", r)
	}
	if r := f.send(t, http.MethodPost, "/api/logout/", "", "", "Authorization", "Token "+f.alice); r.code != 401 {
		t.Fatalf("second logout: %d %s", r.code, r.body)
	}
}

func TestFailureThrottleStopsGuessing(t *testing.T) {
	f := loginFixture(t, nil, func(h *TokenAuth) { h.FailureThrottle = "3/min" })
	for i := 1; i <= 3; i++ {
		if r := f.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token guess"); r.code != 401 {
			t.Fatalf("guess %d: %d %s", i, r.code, r.body)
		}
	}
	// Malformed and well-formed guesses alike are held back now.
	for _, k := range []string{"guess", randomKey(7)} {
		if r := f.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+k); r.code != 429 {
			t.Fatalf("guess %q over the budget: %d %s", k, r.code, r.body)
		}
	}
	r := f.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+randomKey(8))
	if r.code != 429 || r.header.Get("Retry-After") == "" || !strings.HasPrefix(r.body, `{"detail":"Request was throttled. Expected available in `) {
		t.Fatalf("after the budget: %d %s", r.code, r.body)
	}
	// A valid token still passes (TestFailureThrottleNeverRefusesAValidToken).
	if r := f.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+f.alice); r.code != 200 {
		t.Fatalf("valid token after the budget: %d %s", r.code, r.body)
	}
	// Anonymous requests and other clients are not affected.
	if r := f.send(t, http.MethodGet, "/api/x", "", ""); r.code != 401 {
		t.Fatalf("anonymous: %d", r.code)
	}
}

// A config reload keeps the login budget: the new handler shares it with
// the old one, which is cleaned up after it starts.
func TestLoginThrottleSurvivesAReload(t *testing.T) {
	login := func() *Login { return &Login{Path: "/reload-login", Throttle: "2/min"} }
	old := loginFixture(t, login(), nil)
	for i := 0; i < 2; i++ {
		old.send(t, http.MethodPost, "/reload-login", jsonCT, `{}`)
	}
	reloaded := &TokenAuth{StoreRaw: json.RawMessage(`{"kind":"sqlite","path":"` + old.path + `"}`), Login: login()}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := reloaded.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer reloaded.Cleanup()
	if err := old.h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	f := &fixture{h: reloaded}
	if r := f.send(t, http.MethodPost, "/reload-login", jsonCT, `{}`); r.code != 429 {
		t.Fatalf("after the reload: %d %s", r.code, r.body)
	}
}

// The re-hash of an upgrade_hashes login costs as much as a check, and
// runs inside the same hashing slot, never beside the limit.
func TestLoginRehashRunsInsideAHashingSlot(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/login", UpgradeHashes: true}, nil)
	f.h.hashers = newHashLimiter(1, 1)
	held := -1
	saved := makePassword
	makePassword = func(raw string, iterations int) (string, error) {
		held = len(f.h.hashers.slots)
		return saved(raw, iterations)
	}
	t.Cleanup(func() { makePassword = saved })
	r := f.send(t, http.MethodPost, "/login", jsonCT, `{"username":"carol","password":"`+testPassword+`"}`)
	if r.code != 200 {
		t.Fatalf("login: %d %s", r.code, r.body)
	}
	if held != 1 {
		t.Fatalf("the re-hash ran with %d hashing slots held, want 1 (its own)", held)
	}
}

// When every hashing slot is busy and the queue is full, a login is
// answered 503 with Retry-After at once instead of joining an unbounded
// queue.
func TestLoginPastAFullHashQueueIs503(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/login"}, nil)
	f.h.hashers = newHashLimiter(1, 0)
	release, started := make(chan struct{}), make(chan struct{})
	go f.h.hashers.run(context.Background(), func() { close(started); <-release })
	<-started
	defer close(release)
	r := f.send(t, http.MethodPost, "/login", jsonCT, `{"username":"alice","password":"`+testPassword+`"}`)
	if r.code != 503 || r.header.Get("Retry-After") != "1" || r.body != `{"detail":"Service temporarily unavailable, try again later."}` {
		t.Fatalf("got %d %s Retry-After %q", r.code, r.body, r.header.Get("Retry-After"))
	}
}

// A login body drip-fed slower than body_timeout allows is cut off with
// 408 and a closed connection, with a Content-Length and chunked alike.
func TestLoginBodyTimeoutCutsOffADrippedBody(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/login"}, nil)
	var server *caddyhttp.Server // the Caddy server the request comes through
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, server)
		next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
		if err := f.h.ServeHTTP(w, r, next); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	for _, tt := range []struct {
		name        string
		bodyTimeout time.Duration
		readTimeout time.Duration // the server's read_body
	}{
		{"body_timeout", 300 * time.Millisecond, 0},
		{"a shorter read_body of the server wins", 10 * time.Second, 300 * time.Millisecond},
	} {
		f.h.Login.BodyTimeout = caddy.Duration(tt.bodyTimeout)
		server = &caddyhttp.Server{ReadTimeout: caddy.Duration(tt.readTimeout)}
		for _, framing := range []string{"Content-Length: 1000", "Transfer-Encoding: chunked"} {
			t.Run(tt.name+"/"+framing, func(t *testing.T) {
				conn, err := net.Dial("tcp", srv.Listener.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s\r\n\r\n", framing)
				// Drip a byte every 100 ms for up to 3 s, never finishing.
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					for range 30 {
						select {
						case <-stop:
							return
						case <-time.After(100 * time.Millisecond):
						}
						b := "{"
						if strings.HasPrefix(framing, "Transfer") {
							b = "1\r\n{\r\n"
						}
						if _, err := io.WriteString(conn, b); err != nil {
							return
						}
					}
				}()
				start := time.Now()
				_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatalf("no answer to a dripped body within 10 s: %v", err)
				}
				body, _ := io.ReadAll(resp.Body)
				took := time.Since(start)
				if resp.StatusCode != http.StatusRequestTimeout || string(body) != `{"detail":"The request body was not received in time."}` || !resp.Close {
					t.Fatalf("got %d %s (close %v)", resp.StatusCode, body, resp.Close)
				}
				if took > 3*time.Second {
					t.Fatalf("answered after %v, when the client had stopped dripping: the deadline did not cut it off", took)
				}
			})
		}
	}
}

// Over its failure budget a client's refused tokens get 429, but a valid
// token from the same IP still passes, whether the cache knows it or the
// store finds it: behind one NAT, nobody can lock everybody out.
func TestFailureThrottleNeverRefusesAValidToken(t *testing.T) {
	f := loginFixture(t, nil, func(h *TokenAuth) { h.FailureThrottle = "3/min" })
	if r := f.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+f.alice); r.code != 200 {
		t.Fatalf("alice before: %d %s", r.code, r.body)
	}
	for i := 1; i <= 3; i++ {
		if r := f.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+randomKey(100+i)); r.code != 401 {
			t.Fatalf("guess %d: %d %s", i, r.code, r.body)
		}
	}
	if r := f.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+randomKey(200)); r.code != 429 {
		t.Fatalf("guess over the budget: %d %s", r.code, r.body)
	}
	if r := f.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+f.alice); r.code != 200 || !r.next {
		t.Fatalf("alice (a cache hit) over the budget: %d %s", r.code, r.body)
	}
	carol, err := f.h.store.(store.Admin).TokenFor(context.Background(), "carol", false)
	if err != nil {
		t.Fatal(err)
	}
	if r := f.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+carol); r.code != 200 || !r.next {
		t.Fatalf("carol (a store lookup) over the budget: %d %s", r.code, r.body)
	}
	if r := f.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+f.bob); r.code != 429 {
		t.Fatalf("bob (inactive) over the budget: %d %s", r.code, r.body)
	}
}

// A throttled handler behind trusted_proxies without
// trusted_proxies_strict warns, once, on the first request that came
// through a trusted proxy; with strict mode it says nothing.
func TestThrottleWarnsOfTrustedProxiesWithoutStrict(t *testing.T) {
	for _, strict := range []int{0, 1} {
		f := loginFixture(t, nil, func(h *TokenAuth) { h.FailureThrottle = "30/min" })
		core, logs := observer.New(zapcore.WarnLevel)
		f.h.logger = zap.New(core)
		srv := &caddyhttp.Server{TrustedProxiesStrict: strict}
		for range 3 {
			req := httptest.NewRequest(http.MethodGet, "/api/x", nil)
			req.Header.Set("Authorization", "Token "+randomKey(300))
			rec := httptest.NewRecorder()
			req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rec, srv)
			caddyhttp.SetVar(req.Context(), caddyhttp.TrustedProxyVarKey, true)
			caddyhttp.SetVar(req.Context(), caddyhttp.ClientIPVarKey, "198.51.100.7")
			if err := f.h.ServeHTTP(rec, req, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })); err != nil {
				t.Fatal(err)
			}
		}
		n := logs.FilterMessageSnippet("trusted_proxies_strict").Len()
		if want := 1 - strict; n != want {
			t.Errorf("trusted_proxies_strict %d: %d warnings, want %d", strict, n, want)
		}
	}
}

// The login path is matched exactly: a path below it is a protected route
// like any other.
func TestLoginPathIsMatchedExactly(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/login"}, nil)
	body := `{"username":"alice","password":"` + testPassword + `"}`
	if r := f.send(t, http.MethodPost, "/login", jsonCT, body); r.code != 200 {
		t.Fatalf("/login: %d %s", r.code, r.body)
	}
	for _, path := range []string{"/login/x", "/loginx", "/login/"} {
		if r := f.send(t, http.MethodPost, path, jsonCT, body); r.code != 401 || r.body != `{"detail":"Authentication credentials were not provided."}` {
			t.Errorf("%s: %d %s, want the 401 of a protected route", path, r.code, r.body)
		}
	}
}

// Without max_body, a login body may have 64 KiB; one byte more is 413.
func TestLoginBodyLimitDefaultsTo64KiB(t *testing.T) {
	f := loginFixture(t, &Login{Path: "/login"}, nil)
	fits := `{"username":"alice","password":"` + testPassword + `","pad":"`
	fits += strings.Repeat("x", 64<<10-len(fits)-2) + `"}`
	if r := f.send(t, http.MethodPost, "/login", jsonCT, fits); r.code != 200 {
		t.Fatalf("a 64 KiB body: %d %s", r.code, r.body)
	}
	over := fits[:len(fits)-2] + `x"}`
	if r := f.send(t, http.MethodPost, "/login", jsonCT, over); r.code != 413 || r.body != `{"detail":"Request body is larger than 65536 bytes."}` {
		t.Fatalf("a body of 64 KiB + 1: %d %s", r.code, r.body)
	}
}

// The tokens of inactive users count against failure_throttle like unknown
// keys.
func TestFailureThrottleCountsInactiveUsers(t *testing.T) {
	f := loginFixture(t, nil, func(h *TokenAuth) { h.FailureThrottle = "3/min" })
	for i := 1; i <= 3; i++ {
		if r := f.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+f.bob); r.code != 401 || r.body != `{"detail":"User inactive or deleted."}` {
			t.Fatalf("bob %d: %d %s", i, r.code, r.body)
		}
	}
	if r := f.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+randomKey(400)); r.code != 429 {
		t.Fatalf("after 3 refused tokens of an inactive user: %d %s, want 429", r.code, r.body)
	}
}

// The failure budget is kept across a reload (the new handler shares it
// with the old one, which is cleaned up after it starts) and shared by the
// handlers that name the same rate; another rate is another budget.
func TestFailureThrottleSurvivesAReloadAndIsShared(t *testing.T) {
	const rate = "3/min"
	old := loginFixture(t, nil, func(h *TokenAuth) { h.FailureThrottle = rate })
	for i := range 3 {
		if r := old.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+randomKey(500+i)); r.code != 401 {
			t.Fatalf("guess %d: %d %s", i, r.code, r.body)
		}
	}
	provision := func(rate string) *fixture {
		h := &TokenAuth{StoreRaw: json.RawMessage(`{"kind":"sqlite","path":"` + old.path + `"}`), FailureThrottle: rate}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Cleanup() })
		return &fixture{h: h}
	}
	reloaded := provision(rate)
	other := provision("4/min")
	if err := old.h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if r := reloaded.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+randomKey(510)); r.code != 429 {
		t.Fatalf("after the reload: %d %s, want 429", r.code, r.body)
	}
	if r := other.send(t, http.MethodGet, "/api/x", "", "", "Authorization", "Token "+randomKey(511)); r.code != 401 {
		t.Fatalf("another rate: %d %s, want a budget of its own", r.code, r.body)
	}
}
