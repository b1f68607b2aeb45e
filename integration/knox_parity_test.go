package integration

// Caddy in `tokens knox` mode answers as knox does, response for response:
// the same requests go to Caddy and to the real knox (knoxcheck.py), each
// on its own copy of one database, in the same order, and the answers
// (status, body, Content-Type, Allow, WWW-Authenticate, Vary, Set-Cookie)
// must be equal once what must differ is replaced (new keys and expiries,
// whose format is checked exactly, and the Django session that knox's
// recipe stores); then the rows left must agree.

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"
)

// knoxCase is one request of a parity table.
type knoxCase struct {
	name string
	req  knoxRequest
	want int // the status knox must answer (a check of the test itself)
}

// knoxParityRun sends the cases to Caddy (on caddyDB, already serving)
// and then to knox (on knoxDB), and compares each pair in a subtest (the
// protected route's as knoxCompareWhoami does); it returns both sides'
// answers.
func knoxParityRun(t *testing.T, caddyDB, knoxDB djangoDB, s knoxSettings, cases []knoxCase) (caddy, knox []knoxResponse) {
	t.Helper()
	reqs := make([]knoxRequest, len(cases))
	for i, c := range cases {
		reqs[i] = c.req
	}
	caddy = knoxSendAll(t, reqs)
	knox = knoxAsk(t, knoxDB, s, reqs)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Logf("%s\nCaddy %v", c.req, caddy[i])
			if c.req.Path == knoxWhoami {
				knoxCompareWhoami(t, c.req, caddy[i], knox[i])
			} else {
				knoxCompare(t, c.req, caddy[i], knox[i], s.Prefix)
			}
			if knox[i].Status != c.want {
				t.Errorf("knox answered %v, the test expects %d", knox[i], c.want)
			}
			if len(caddy[i].SetCookie) != 0 {
				t.Errorf("Caddy set cookies %q", caddy[i].SetCookie)
			}
		})
	}
	return caddy, knox
}

// knoxCheckLogins checks every 200 login of a run against the rows its
// side left: the key's row exists with token_key and digest, for user, its
// expiry the answer's and now + ttl (NULL for none).
func knoxCheckLogins(t *testing.T, side string, st knoxDBState, s knoxSettings, cases []knoxCase, answers []knoxResponse, users map[string]string) {
	t.Helper()
	for i, c := range cases {
		r := answers[i]
		if r.Status != http.StatusOK || c.req.Path != knoxLogin || c.req.method() != http.MethodPost {
			continue
		}
		if _, indented := c.req.Headers["Accept"]; indented {
			continue
		}
		key, expiry := knoxLoginBody(t, side+" "+c.name, r, s.Prefix)
		row := st.byKey(key)
		switch {
		case row == nil:
			t.Errorf("%s, %s: no row for the key %s…", side, c.name, key[:15])
			continue
		case row.TokenKey != key[:15]:
			t.Errorf("%s, %s: token_key %q, want %q", side, c.name, row.TokenKey, key[:15])
		case users[c.name] != "" && row.User != users[c.name]:
			t.Errorf("%s, %s: the token is %s's, want %s's", side, c.name, row.User, users[c.name])
		}
		if !knoxSameTime(row.Expiry, expiry) {
			t.Errorf("%s, %s: stored expiry %s, the answer's %s", side, c.name, knoxFmt(row.Expiry), knoxFmt(expiry))
		}
		ttl := s.ttl()
		switch {
		case ttl == 0 && expiry != nil:
			t.Errorf("%s, %s: expiry %s, want null", side, c.name, knoxFmt(expiry))
		case ttl != 0 && (expiry == nil || !knoxWithin(*expiry, r.Started.Add(ttl), r.Finished.Add(ttl), 5*time.Millisecond)):
			t.Errorf("%s, %s: expiry %s, want the request's now + %v (%s … %s)", side, c.name, knoxFmt(expiry), ttl,
				r.Started.Add(ttl).UTC().Format(time.RFC3339Nano), r.Finished.Add(ttl).UTC().Format(time.RFC3339Nano))
		}
	}
}

func TestKnoxHeaderParity(t *testing.T) {
	knoxRequire(t)
	djangoEachStore(t, testKnoxHeaderParity)
}

func testKnoxHeaderParity(t *testing.T, kind string) {
	seed, tk, s, cases := knoxHeaderSetup(t, kind)
	key := tk[0].Token
	caddyDB, knoxDB := knoxCopyDB(t, seed), knoxCopyDB(t, seed)
	knoxStartCaddy(t, caddyDB, s, globalOptions, "")
	knoxParityRun(t, caddyDB, knoxDB, s, cases)
	get := func(values ...string) knoxRequest {
		return knoxRequest{Method: http.MethodGet, Path: knoxWhoami, Authorization: values}
	}
	// Invalid UTF-8 after the keyword: knox decodes it unguarded and
	// answers 500; Caddy answers as DRF's TokenAuthentication does
	// (documented difference).
	t.Run("invalid UTF-8 (documented difference)", func(t *testing.T) {
		drf := `{"detail":"Invalid token header. Token string should not contain invalid characters."}`
		for _, v := range []string{"Token " + key + "\xb8", "Token \xff", "Token " + key[:15] + "\xc3"} {
			r := get(v)
			got := knoxSend(t, r)
			knox := knoxAsk(t, knoxDB, s, []knoxRequest{r})[0]
			if knox.Status != http.StatusInternalServerError {
				t.Errorf("%s: knox %v, expected its 500", r, knox)
			}
			if got.Status != 401 || string(got.Body) != drf || deref(got.WWWAuthenticate) != "Token" || deref(got.ContentType) != "application/json" {
				t.Errorf("%s: Caddy %v, want DRF's 401 %s", r, got, drf)
			}
		}
	})
	// Bytes Go's HTTP server refuses in a header value (400 before any
	// handler), as in the DRF tests.
	t.Run("refused by Go's server", func(t *testing.T) {
		for _, v := range []string{"Token\x00" + key, "Token\x0b" + key, "Token\x0c" + key, "Token " + key + "\x7f"} {
			r := get(v)
			if got := knoxSend(t, r); got.Status != http.StatusBadRequest {
				t.Errorf("%s: Caddy %v, want Go's 400", r, got)
			}
		}
	})
	t.Run("rows left", func(t *testing.T) {
		knoxCompareStates(t, tk, knoxState(t, caddyDB), knoxState(t, knoxDB))
	})
}

// knoxHeaderSetup is the database and the table of the header parity test.
func knoxHeaderSetup(t *testing.T, kind string) (djangoDB, []knoxToken, knoxSettings, []knoxCase) {
	seed := knoxNewDB(t, kind)
	knoxCreateUsers(t, seed,
		djangoUser{Username: "alice", Password: "alice-pw", Active: true},
		djangoUser{Username: "bob", Password: "bob-pw", Active: false})
	past := time.Now().Add(-time.Hour)
	tk := knoxCreateTokens(t, seed, knoxSettings{},
		knoxNewToken{Username: "alice"},
		knoxNewToken{Username: "bob"},
		knoxNewToken{Username: "alice", NoExpiry: true},
		knoxNewToken{Username: "alice", Expiry: &past})
	key, bobKey, neverKey, expiredKey := tk[0].Token, tk[1].Token, tk[2].Token, tk[3].Token
	get := func(values ...string) knoxRequest {
		return knoxRequest{Method: http.MethodGet, Path: knoxWhoami, Authorization: values}
	}
	cases := []knoxCase{
		{"absent", get(), 401},
		{"empty", get(""), 401},
		{"valid key", get("Token " + key), 200},
		{"never-expiring key", get("Token " + neverKey), 200},
		{"keyword lower case", get("token " + key), 200},
		{"keyword upper case", get("TOKEN " + key), 200},
		{"keyword mixed case", get("tOkEn " + key), 200},
		{"keyword with Kelvin sign", get("To\xe2\x84\xaaen " + key), 401},
		{"tab separator", get("Token\t" + key), 200},
		{"repeated spaces", get("Token     " + key), 200},
		{"space and tab run", get("Token \t \t" + key), 200},
		{"leading and trailing spaces", get("   Token " + key + "   "), 200},
		{"leading and trailing tabs", get("\tToken " + key + "\t"), 200},
		{"NBSP separator", get("Token\xc2\xa0" + key), 401},
		{"NEL separator", get("Token\xc2\x85" + key), 401},
		{"latin-1 NBSP byte separator", get("Token\xa0" + key), 401},
		{"valid non-ASCII key", get("Token caf\xc3\xa9"), 401},
		{"duplicate headers", get("Token "+key, "Token "+key), 401},
		{"keyword and key in two headers", get("Token", key), 401},
		{"second header empty", get("Token "+key, ""), 401},
		{"Bearer", get("Bearer " + key), 401},
		{"Basic", get(knoxBasic("alice", "alice-pw")), 401},
		{"TokenX", get("TokenX " + key), 401},
		{"keyword alone", get("Token"), 401},
		{"keyword and space", get("Token "), 401},
		{"three words", get("Token " + key + " extra"), 401},
		{"key one character short", get("Token " + key[:63]), 401},
		{"key one character more", get("Token " + key + "0"), 401},
		{"upper-cased key", get("Token " + strings.ToUpper(key)), 401},
		{"token_key only", get("Token " + key[:15]), 401},
		{"token_key and another tail", get("Token " + key[:15] + strings.Repeat("0", 49)), 401},
		{"token_key and a non-hex tail", get("Token " + key[:15] + "zz"), 401},
		{"14 characters of the token_key", get("Token " + key[:14]), 401},
		{"the digest", get("Token " + tk[0].Digest), 401},
		{"unknown key", get("Token " + strings.Repeat("0", 64)), 401},
		{"short non-hex key", get("Token abcd1234"), 401},
		{"SQL-looking key", get("Token '||'"), 401},
		{"LIKE pattern key", get("Token " + key[:14] + "%"), 401},
		{"comma in key", get("Token " + key + ","), 401},
		{"inactive user's key", get("Token " + bobKey), 401},
		{"expired key", get("Token " + expiredKey), 401},
		{"expired key again", get("Token " + expiredKey), 401},
		{"valid key after the expired one", get("Token " + key), 200},
	}
	return seed, tk, knoxSettings{}, cases
}

// The login users.
var knoxLoginUsers = []djangoUser{
	{Username: "alice", Password: "alice-pw", Active: true},
	{Username: "carol", Password: "carol-pw", Active: true},
	{Username: "dave", Password: "dave-pw", Active: false},
	{Username: "frank", Password: " frank pw:x\t", Active: true}, // spaces at both ends, a colon
	{Username: "123", Password: "pw-123", Active: true},
	{Username: "ÿalice", Password: "pwÿ", Active: true},
}

func TestKnoxLoginParity(t *testing.T) {
	knoxRequire(t)
	djangoEachStore(t, testKnoxLoginParity)
}

func testKnoxLoginParity(t *testing.T, kind string) {
	seed := knoxNewDB(t, kind)
	knoxCreateUsers(t, seed, knoxLoginUsers...)
	knoxExec(t, seed, `UPDATE auth_user SET password = '!unusable' WHERE username = 'carol'`)
	knoxCreateUsers(t, seed, djangoUser{Username: "erin", Password: "erin-pw", Active: true})
	past := time.Now().Add(-time.Hour)
	tk := knoxCreateTokens(t, seed, knoxSettings{},
		knoxNewToken{Username: "alice"},
		knoxNewToken{Username: "dave"},
		knoxNewToken{Username: "erin", Expiry: &past})
	aliceKey, daveKey, expiredKey := tk[0].Token, tk[1].Token, tk[2].Token

	for _, s := range []knoxSettings{{}, {NoExpiry: true, Prefix: "myapp_"}} {
		name := "ttl 10h"
		if s.NoExpiry {
			name = "ttl none, prefix myapp_"
		}
		t.Run(name, func(t *testing.T) {
			cases, users := knoxLoginCases(t, aliceKey, daveKey, expiredKey)
			caddyDB, knoxDB := knoxCopyDB(t, seed), knoxCopyDB(t, seed)
			knoxStartCaddy(t, caddyDB, s, globalOptions, "")
			caddy, knox := knoxParityRun(t, caddyDB, knoxDB, s, cases)
			cs, ks := knoxState(t, caddyDB), knoxState(t, knoxDB)
			t.Run("Caddy's rows of its logins", func(t *testing.T) { knoxCheckLogins(t, "Caddy", cs, s, cases, caddy, users) })
			t.Run("knox's rows of its logins", func(t *testing.T) { knoxCheckLogins(t, "knox", ks, s, cases, knox, users) })
			t.Run("rows left", func(t *testing.T) { knoxCompareStates(t, tk, cs, ks) })
			t.Run("stored datetimes are Django's", func(t *testing.T) { knoxCheckSQLiteTimes(t, caddyDB) })
		})
	}
}

// knoxLoginCases is the login table: Basic, body (DRF's
// AuthTokenSerializer through knox's recipe), neither; and for each 200
// whose token it is.
func knoxLoginCases(t *testing.T, aliceKey, daveKey, expiredKey string) ([]knoxCase, map[string]string) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	basic := func(values ...string) knoxRequest {
		return knoxRequest{Path: knoxLogin, Authorization: values}
	}
	good := knoxBasic("alice", "alice-pw")
	aliceJSON := `{"username":"alice","password":"alice-pw"}`
	form := func(body string) knoxRequest {
		return knoxRequest{Path: knoxLogin, ContentType: ctForm, Body: []byte(body)}
	}
	multipart := func(fields ...string) knoxRequest {
		lr := multipartLogin(t, fields...)
		return knoxRequest{Path: knoxLogin, ContentType: lr.ContentType, Body: lr.Body}
	}
	raw := func(ct, body string) knoxRequest {
		return knoxRequest{Path: knoxLogin, ContentType: &ct, Body: []byte(body)}
	}
	cases := []knoxCase{
		// Basic: knox's LoginView with DRF's BasicAuthentication.
		{"Basic", knoxBasicLogin("alice", "alice-pw"), 200},
		{"Basic, keyword lower case", basic("basic " + b64("alice:alice-pw")), 200},
		{"Basic, keyword upper case", basic("BASIC " + b64("alice:alice-pw")), 200},
		{"Basic, tab separator", basic("Basic\t" + b64("alice:alice-pw")), 200},
		{"Basic, colon in the password", knoxBasicLogin("frank", " frank pw:x\t"), 200},
		{"Basic, number as username", knoxBasicLogin("123", "pw-123"), 200},
		{"Basic, UTF-8 credentials", basic("Basic " + b64("ÿalice:pwÿ")), 200},
		{"Basic, latin-1 credentials", basic("Basic " + b64("\xffalice:pw\xff")), 200},
		{"Basic, non-alphabet characters skipped", basic("Basic " + b64("alice:alice-pw")[:4] + "*!" + b64("alice:alice-pw")[4:]), 200},
		{"Basic, excess padding", basic("Basic " + b64("alice:alice-pw") + "=="), 200},
		{"Basic, missing padding", basic("Basic " + strings.TrimRight(b64("alice:alice-pw"), "=")), 401},
		{"Basic, bad padding", basic("Basic abc"), 401},
		{"Basic, only symbols", basic("Basic !!!!"), 401},
		{"Basic, URL-safe alphabet", basic("Basic " + base64.URLEncoding.EncodeToString([]byte("alice:alice-pw>?"))), 401},
		{"Basic, body ignored", knoxBasicLogin("alice", "alice-pw").with(), 200},
		{"Basic, wrong password", knoxBasicLogin("alice", "alice-pw2"), 401},
		{"Basic, unknown user", knoxBasicLogin("zed", "alice-pw"), 401},
		{"Basic, inactive user", knoxBasicLogin("dave", "dave-pw"), 401},
		{"Basic, unusable password", knoxBasicLogin("carol", "carol-pw"), 401},
		{"Basic, no colon", basic("Basic " + b64("alice")), 401},
		{"Basic, empty password", knoxBasicLogin("alice", ""), 401},
		{"Basic, empty credentials", basic("Basic " + b64(":")), 401},
		{"Basic, username not trimmed", knoxBasicLogin(" alice", "alice-pw"), 401},
		{"Basic, user name case", knoxBasicLogin("ALICE", "alice-pw"), 401},
		{"Basic, keyword alone", basic("Basic"), 401},
		{"Basic, keyword and space", basic("Basic "), 401},
		{"Basic, three words", basic(good + " extra"), 401},
		{"Basic, then a Token header", basic(good, "Token "+aliceKey), 401},
		{"Basic, valid token first", basic("Token "+aliceKey, good), 401},
		{"Basic, NBSP separator", basic("Basic\xc2\xa0" + b64("alice:alice-pw")), 401},
		{"Basic, GET", basic(good).as(http.MethodGet), 405},
		{"Basic, PUT", basic(good).as(http.MethodPut), 405},
		{"Basic, DELETE", basic(good).as(http.MethodDelete), 405},
		{"Basic, OPTIONS", basic(good).as(http.MethodOptions), 200},
		{"Basic, HTML only", basic(good).with("Accept", "text/html"), 406},
		{"Basic, wrong password, HTML only", knoxBasicLogin("alice", "x").with("Accept", "text/html"), 406},
		{"Basic, indent=4", basic(good).with("Accept", "application/json; indent=4"), 200},
		{"Basic, wrong password, indent=2", knoxBasicLogin("alice", "x").with("Accept", "application/json; indent=2"), 401},
		{"Basic, wildcard Accept", basic(good).with("Accept", "text/html, */*;q=0.1"), 200},

		// Neither: the Basic view's 401.
		{"nothing", knoxRequest{Path: knoxLogin}, 401},
		{"no body, JSON content type", knoxRequest{Path: knoxLogin, ContentType: ctJSON}, 401},
		{"no body, valid token", knoxPost(knoxLogin, aliceKey), 401},
		{"no body, bad token", knoxPost(knoxLogin, "nope"), 401},
		{"no body, Bearer", basic("Bearer " + aliceKey), 401},
		{"GET, nothing", knoxRequest{Method: http.MethodGet, Path: knoxLogin}, 401},
		{"OPTIONS, nothing", knoxRequest{Method: http.MethodOptions, Path: knoxLogin}, 401},
		{"nothing, HTML only", knoxRequest{Path: knoxLogin}.with("Accept", "text/html"), 406},

		// A body: knox's recipe (AllowAny, AuthTokenSerializer, login()).
		{"JSON", knoxBodyLogin(aliceJSON), 200},
		{"JSON, again", knoxBodyLogin(aliceJSON), 200},
		{"JSON with charset", raw("application/json; charset=utf-8", aliceJSON), 200},
		{"urlencoded", form("username=alice&password=alice-pw"), 200},
		{"multipart", multipart("username", "alice", "password", "alice-pw"), 200},
		{"username trimmed", knoxBodyLogin(`{"username":"  alice\t\n","password":"alice-pw"}`), 200},
		{"password kept as sent", knoxPasswordLogin("frank", " frank pw:x\t"), 200},
		{"number as username", knoxBodyLogin(`{"username":123,"password":"pw-123"}`), 200},
		{"last form value wins", form("username=nobody&username=alice&password=alice-pw"), 200},
		{"last JSON member wins", knoxBodyLogin(`{"username":"nobody","password":"alice-pw","username":"alice"}`), 200},
		{"upper-case content type", raw("Application/JSON", aliceJSON), 200},
		{"indent=4", knoxBodyLogin(aliceJSON).with("Accept", "application/json; indent=4"), 200},
		{"valid token, login as another user", knoxPasswordLogin("frank", " frank pw:x\t").with("Authorization", "Token "+aliceKey), 200},
		{"other scheme ignored", knoxBodyLogin(aliceJSON).with("Authorization", "Bearer x"), 200},
		{"wrong password", knoxPasswordLogin("alice", "alice-pw2"), 400},
		{"password not trimmed", knoxPasswordLogin("frank", "frank pw:x"), 400},
		{"unknown user", knoxPasswordLogin("zed", "alice-pw"), 400},
		{"inactive user", knoxPasswordLogin("dave", "dave-pw"), 400},
		{"unusable password", knoxPasswordLogin("carol", "carol-pw"), 400},
		{"missing password", knoxBodyLogin(`{"username":"alice"}`), 400},
		{"empty object", knoxBodyLogin(`{}`), 400},
		{"blank username", knoxBodyLogin(`{"username":"","password":"x"}`), 400},
		{"null username", knoxBodyLogin(`{"username":null,"password":"x"}`), 400},
		{"boolean username", knoxBodyLogin(`{"username":true,"password":"x"}`), 400},
		{"list password", knoxBodyLogin(`{"username":"alice","password":["x"]}`), 400},
		{"NUL in username", knoxBodyLogin(`{"username":"al\u0000ice","password":"x"}`), 400},
		{"surrogate in username", knoxBodyLogin(`{"username":"a\ud800","password":"x"}`), 400},
		{"form blank fields", form("username=&password="), 400},
		{"multipart missing username", multipart("password", "x"), 400},
		{"list body", knoxBodyLogin(`["alice","alice-pw"]`), 400},
		{"null body", knoxBodyLogin(`null`), 400},
		{"truncated JSON", knoxBodyLogin(`{"username":`), 400},
		{"whitespace only", knoxBodyLogin("  \n"), 400},
		{"invalid UTF-8 in JSON", knoxBodyLogin("{\"username\":\"\xff\",\"password\":\"x\"}"), 400},
		{"text/plain", raw("text/plain", "username=alice"), 415},
		{"body without content type", knoxRequest{Path: knoxLogin, Body: []byte(aliceJSON)}, 415},
		{"multipart without boundary", raw("multipart/form-data", "x"), 400},
		{"bad token", knoxBodyLogin(aliceJSON).with("Authorization", "Token nope"), 401},
		{"keyword alone", knoxBodyLogin(aliceJSON).with("Authorization", "Token"), 401},
		{"token with spaces", knoxBodyLogin(`{}`).with("Authorization", "Token a b"), 401},
		{"expired token", knoxBodyLogin(aliceJSON).with("Authorization", "Token "+expiredKey), 401},
		{"inactive user's token", knoxBodyLogin(aliceJSON).with("Authorization", "Token "+daveKey), 401},
		{"bad token, indent=2", knoxBodyLogin(`{}`).with("Authorization", "Token nope", "Accept", "application/json; indent=2"), 401},
		{"HTML only", knoxBodyLogin(aliceJSON).with("Accept", "text/html"), 406},
		{"406 before 401", knoxBodyLogin(`{}`).with("Accept", "text/html", "Authorization", "Token nope"), 406},
		{"GET with a body", knoxBodyLogin(aliceJSON).as(http.MethodGet), 405},
		{"PUT with a body", knoxBodyLogin(aliceJSON).as(http.MethodPut), 405},
		{"OPTIONS with a body", knoxBodyLogin(aliceJSON).as(http.MethodOptions), 200},
		{"400 in the negotiated indent", knoxBodyLogin(`{}`).with("Accept", "application/json; indent=3"), 400},
	}
	// "Basic, body ignored" carries a body with other credentials.
	for i := range cases {
		if cases[i].name == "Basic, body ignored" {
			cases[i].req.ContentType, cases[i].req.Body = ctJSON, []byte(`{"username":"frank","password":"nope"}`)
		}
	}
	users := map[string]string{
		"Basic":                              "alice",
		"Basic, colon in the password":       "frank",
		"Basic, number as username":          "123",
		"Basic, UTF-8 credentials":           "ÿalice",
		"Basic, latin-1 credentials":         "ÿalice",
		"Basic, body ignored":                "alice",
		"number as username":                 "123",
		"password kept as sent":              "frank",
		"valid token, login as another user": "frank",
		"JSON":                               "alice",
	}
	return cases, users
}

func TestKnoxLimitParity(t *testing.T) {
	knoxRequire(t)
	djangoEachStore(t, testKnoxLimitParity)
}

// limit_per_user 2 (TOKEN_LIMIT_PER_USER): live and never-expiring tokens
// count, expired ones neither count nor go; the recipe's 403 comes after
// its login() and so updates last_login, the Basic view's does not.
func testKnoxLimitParity(t *testing.T, kind string) {
	seed, tk, s, cases := knoxLimitSetup(t, kind)
	caddyDB, knoxDB := knoxCopyDB(t, seed), knoxCopyDB(t, seed)
	knoxStartCaddy(t, caddyDB, s, globalOptions, "")
	caddy, knox := knoxParityRun(t, caddyDB, knoxDB, s, cases)
	cs, ks := knoxState(t, caddyDB), knoxState(t, knoxDB)
	t.Run("Caddy's rows of its logins", func(t *testing.T) { knoxCheckLogins(t, "Caddy", cs, s, cases, caddy, nil) })
	t.Run("knox's rows of its logins", func(t *testing.T) { knoxCheckLogins(t, "knox", ks, s, cases, knox, nil) })
	t.Run("rows left", func(t *testing.T) { knoxCompareStates(t, tk, cs, ks) })
	t.Run("last_login", func(t *testing.T) {
		// knox: erin's 403 came after the recipe's login(), alice's Basic
		// 403 did not log in (her later 200 did).
		if ks.Users["erin"].LastLogin == nil {
			t.Errorf("knox did not set erin's last_login on the recipe's 403: the test's premise is wrong")
		}
		for _, side := range []struct {
			name string
			st   knoxDBState
			r    []knoxResponse
		}{{"Caddy", cs, caddy}, {"knox", ks, knox}} {
			if l := side.st.Users["erin"].LastLogin; l == nil || !knoxWithin(*l, side.r[1].Started, side.r[1].Finished, 5*time.Millisecond) {
				t.Errorf("%s: erin's last_login %s, want the time of the recipe's 403", side.name, knoxFmt(l))
			}
			if l := side.st.Users["alice"].LastLogin; l == nil || !knoxWithin(*l, side.r[12].Started, side.r[12].Finished, 5*time.Millisecond) {
				t.Errorf("%s: alice's last_login %s, want the time of her last login (not of the Basic 403)", side.name, knoxFmt(l))
			}
		}
	})
	t.Run("a Basic 403 leaves last_login alone", func(t *testing.T) {
		caddyDB, knoxDB := knoxCopyDB(t, seed), knoxCopyDB(t, seed)
		knoxStartCaddy(t, caddyDB, s, globalOptions, "")
		cases := []knoxCase{{"Basic, at the limit", knoxBasicLogin("alice", "alice-pw"), 403}}
		knoxParityRun(t, caddyDB, knoxDB, s, cases)
		for side, db := range map[string]djangoDB{"Caddy": caddyDB, "knox": knoxDB} {
			if l := knoxState(t, db).Users["alice"].LastLogin; l != nil {
				t.Errorf("%s: alice's last_login %s after a Basic 403, want NULL", side, knoxFmt(l))
			}
		}
	})
}

// knoxLimitSetup is the database and the table of the limit parity test.
func knoxLimitSetup(t *testing.T, kind string) (djangoDB, []knoxToken, knoxSettings, []knoxCase) {
	seed := knoxNewDB(t, kind)
	knoxCreateUsers(t, seed,
		djangoUser{Username: "alice", Password: "alice-pw", Active: true},
		djangoUser{Username: "bob", Password: "bob-pw", Active: true},
		djangoUser{Username: "carol", Password: "carol-pw", Active: true},
		djangoUser{Username: "erin", Password: "erin-pw", Active: true})
	past := time.Now().Add(-time.Hour)
	s := knoxSettings{Limit: 2}
	tk := knoxCreateTokens(t, seed, s,
		knoxNewToken{Username: "alice"},
		knoxNewToken{Username: "alice", NoExpiry: true},
		knoxNewToken{Username: "erin"},
		knoxNewToken{Username: "erin", NoExpiry: true},
		knoxNewToken{Username: "bob"},
		knoxNewToken{Username: "bob", Expiry: &past},
		knoxNewToken{Username: "bob", Expiry: &past})
	cases := []knoxCase{
		{"Basic, at the limit", knoxBasicLogin("alice", "alice-pw"), 403},
		{"body, at the limit", knoxPasswordLogin("erin", "erin-pw"), 403},
		{"Basic, one live and two expired", knoxBasicLogin("bob", "bob-pw"), 200},
		{"Basic, now at the limit", knoxBasicLogin("bob", "bob-pw"), 403},
		{"body, first", knoxPasswordLogin("carol", "carol-pw"), 200},
		{"Basic, second", knoxBasicLogin("carol", "carol-pw"), 200},
		{"body, third", knoxPasswordLogin("carol", "carol-pw"), 403},
		{"Basic, third", knoxBasicLogin("carol", "carol-pw"), 403},
		{"Basic, third, indent=4", knoxBasicLogin("carol", "carol-pw").with("Accept", "application/json; indent=4"), 403},
		{"body, wrong password at the limit", knoxPasswordLogin("carol", "nope"), 400},
		{"Basic, wrong password at the limit", knoxBasicLogin("carol", "nope"), 401},
		{"logout one of alice's", knoxPost(knoxLogout, tk[0].Token), 204},
		{"Basic, below the limit again", knoxBasicLogin("alice", "alice-pw"), 200},
	}
	return seed, tk, s, cases
}

func TestKnoxLogoutParity(t *testing.T) {
	knoxRequire(t)
	djangoEachStore(t, testKnoxLogoutParity)
}

func testKnoxLogoutParity(t *testing.T, kind string) {
	seed, tk, s, cases := knoxLogoutSetup(t, kind)
	caddyDB, knoxDB := knoxCopyDB(t, seed), knoxCopyDB(t, seed)
	knoxStartCaddy(t, caddyDB, s, globalOptions, "")
	knoxParityRun(t, caddyDB, knoxDB, s, cases)
	cs, ks := knoxState(t, caddyDB), knoxState(t, knoxDB)
	t.Run("rows left", func(t *testing.T) { knoxCompareStates(t, tk, cs, ks) })
	t.Run("what logout and logoutall deleted", func(t *testing.T) {
		for i, gone := range []bool{true, true, true, false, true, false, false, true, false, false} {
			if (cs.byDigest(tk[i].Digest) == nil) != gone {
				t.Errorf("Caddy: token %d (%s) deleted %v, want %v", i, tk[i].User, !gone, gone)
			}
		}
	})
}

// knoxLogoutSetup is the database and the table of the logout parity test.
func knoxLogoutSetup(t *testing.T, kind string) (djangoDB, []knoxToken, knoxSettings, []knoxCase) {
	seed := knoxNewDB(t, kind)
	knoxCreateUsers(t, seed,
		djangoUser{Username: "alice", Password: "alice-pw", Active: true},
		djangoUser{Username: "bob", Password: "bob-pw", Active: true},
		djangoUser{Username: "carol", Password: "carol-pw", Active: true},
		djangoUser{Username: "dave", Password: "dave-pw", Active: false},
		djangoUser{Username: "erin", Password: "erin-pw", Active: true})
	past := time.Now().Add(-time.Hour)
	s := knoxSettings{}
	tk := knoxCreateTokens(t, seed, s,
		knoxNewToken{Username: "alice"},                 // 0
		knoxNewToken{Username: "alice"},                 // 1
		knoxNewToken{Username: "alice", NoExpiry: true}, // 2
		knoxNewToken{Username: "bob"},                   // 3
		knoxNewToken{Username: "carol", Expiry: &past},  // 4
		knoxNewToken{Username: "carol"},                 // 5
		knoxNewToken{Username: "dave"},                  // 6
		knoxNewToken{Username: "bob"},                   // 7
		knoxNewToken{Username: "carol"},                 // 8
		knoxNewToken{Username: "erin"})                  // 9
	a1, a2, a3, b1, c1, c2, d1, b2, c3, e1 := tk[0].Token, tk[1].Token, tk[2].Token, tk[3].Token, tk[4].Token, tk[5].Token, tk[6].Token, tk[7].Token, tk[8].Token, tk[9].Token
	cases := []knoxCase{
		{"logout, no token", knoxPost(knoxLogout, ""), 401},
		{"logout, bad token", knoxPost(knoxLogout, "nope"), 401},
		{"logout, Basic", knoxRequest{Path: knoxLogout, Authorization: []string{knoxBasic("alice", "alice-pw")}}, 401},
		{"logout, keyword alone", knoxRequest{Path: knoxLogout, Authorization: []string{"Token"}}, 401},
		{"logout, GET", knoxPost(knoxLogout, a1).as(http.MethodGet), 405},
		{"logout, PUT", knoxPost(knoxLogout, a1).as(http.MethodPut), 405},
		{"logout, GET without a token", knoxPost(knoxLogout, "").as(http.MethodGet), 401},
		{"logout, OPTIONS", knoxPost(knoxLogout, a1).as(http.MethodOptions), 200},
		{"logout, HTML only", knoxPost(knoxLogout, c3).with("Accept", "text/html"), 406},
		{"logoutall, HTML only", knoxPost(knoxLogoutAll, e1).with("Accept", "text/html"), 406},
		{"the token after logout's 406", knoxGet(c3), 200},
		{"the token after logoutall's 406", knoxGet(e1), 200},
		{"logoutall, GET", knoxPost(knoxLogoutAll, a1).as(http.MethodGet), 405},
		{"logoutall, DELETE", knoxPost(knoxLogoutAll, a1).as(http.MethodDelete), 405},
		{"logoutall, OPTIONS", knoxPost(knoxLogoutAll, a1).as(http.MethodOptions), 200},
		{"logoutall, no token", knoxPost(knoxLogoutAll, ""), 401},
		{"logout", knoxPost(knoxLogout, a1), 204},
		{"logout again", knoxPost(knoxLogout, a1), 401},
		{"the logged-out token", knoxGet(a1), 401},
		{"another token of the user", knoxGet(a2), 200},
		{"logout, inactive user's token", knoxPost(knoxLogout, d1), 401},
		{"logout, expired token", knoxPost(knoxLogout, c1), 401},
		{"logout with a body", knoxPost(knoxLogout, b2).with("Content-Type", "application/json"), 204},
		{"logout, indent=4", knoxPost(knoxLogout, "nope").with("Accept", "application/json; indent=4"), 401},
		{"logoutall", knoxPost(knoxLogoutAll, a2), 204},
		{"logoutall again", knoxPost(knoxLogoutAll, a2), 401},
		{"the never-expiring token after logoutall", knoxGet(a3), 401},
		{"another user's token after logoutall", knoxGet(b1), 200},
		{"logoutall, inactive user's token", knoxPost(knoxLogoutAll, d1), 401},
		{"carol's live token", knoxGet(c2), 200},
	}
	// "logout with a body": a JSON body, which knox ignores.
	for i := range cases {
		if cases[i].name == "logout with a body" {
			cases[i].req.Headers = nil
			cases[i].req.ContentType, cases[i].req.Body = ctJSON, []byte(`{"all":true}`)
		}
	}
	return seed, tk, s, cases
}
