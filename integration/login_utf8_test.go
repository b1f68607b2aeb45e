package integration

// Login bodies that are not valid UTF-8, on both stores, against DRF's own
// answers: Django decodes form and multipart fields with errors='replace'
// (one U+FFFD per maximal subpart, as Python's bytes.decode), reads a form
// body that is not UTF-8 as ISO-8859-1, and DRF's JSONParser decodes
// strictly. No invalid UTF-8 reaches the store (PostgreSQL refuses it).

import (
	"testing"
)

func TestLoginInvalidUTF8MatchesDRF(t *testing.T) {
	djangoRequire(t)
	djangoEachStore(t, testLoginInvalidUTF8MatchesDRF)
}

func testLoginInvalidUTF8MatchesDRF(t *testing.T, kind string) {
	db := djangoNewDB(t, kind)
	djangoMakeUsers(t, db,
		newUser{Username: "alice", Password: "alice-pw", Active: true},
		newUser{Username: "\uFFFDalice", Password: "\uFFFD\uFFFD", Active: true},
		newUser{Username: "ÿalice", Password: "pwÿ", Active: true})
	loginStartCaddy(t, globalOptions, db, "\t\tlogin "+loginPath)

	cases := []struct {
		name string
		req  loginRequest
		want int    // the status both must answer
		user string // for 200: whose token the body carries
	}{
		// Multipart values: U+FFFD per maximal subpart.
		{"multipart invalid byte in username", multipartLogin(t, "username", "\xffalice", "password", "alice-pw"), 400, ""},
		{"multipart invalid bytes, one U+FFFD each", multipartLogin(t, "username", "\xffalice", "password", "\xff\xfe"), 200, "\uFFFDalice"},
		{"multipart truncated sequences, one U+FFFD each", multipartLogin(t, "username", "\xe2\x82alice", "password", "\xe2\x82\xe2\x82"), 200, "\uFFFDalice"},
		{"multipart surrogate bytes, three U+FFFD", multipartLogin(t, "username", "\xed\xa0\x80alice", "password", "\uFFFD\uFFFD"), 400, ""},
		{"multipart invalid byte in password", multipartLogin(t, "username", "alice", "password", "alice-pw\xff"), 400, ""},
		// Multipart names: a name with invalid bytes is another field.
		{"multipart invalid byte in the username's name", multipartLogin(t, "\xffusername", "alice", "password", "alice-pw"), 400, ""},
		{"multipart invalid byte in the password's name", multipartLogin(t, "username", "alice", "password\xe2\x82", "alice-pw"), 400, ""},

		// Forms: percent escapes as UTF-8 with errors='replace'.
		{"urlencoded %FF", formLogin("username=%FFalice&password=alice-pw"), 400, ""},
		{"urlencoded %FF%FE", formLogin("username=%FFalice&password=%FF%FE"), 200, "\uFFFDalice"},
		{"urlencoded truncated", formLogin("username=%E2%82alice&password=%E2%82%E2%82"), 200, "\uFFFDalice"},
		{"urlencoded %FF in the name", formLogin("user%FFname=alice&password=alice-pw"), 400, ""},
		// A body that is not UTF-8 is ISO-8859-1.
		{"urlencoded raw byte", formLogin("username=\xffalice&password=pw\xff"), 200, "ÿalice"},
		{"urlencoded raw UTF-8", formLogin("username=\xc3\xbfalice&password=pw\xc3\xbf"), 200, "ÿalice"},
		{"urlencoded raw UTF-8 with a raw byte", formLogin("username=\xc3\xbfalice&password=pw\xc3\xbf\xff"), 400, ""},

		// JSON: strict, but a truncated sequence at the very end is dropped.
		{"JSON invalid byte", jsonLogin("{\"username\":\"\xffalice\",\"password\":\"alice-pw\"}"), 400, ""},
		{"JSON surrogate bytes", jsonLogin("{\"username\":\"\xed\xa0\x80alice\",\"password\":\"alice-pw\"}"), 400, ""},
		{"JSON truncated in a string", jsonLogin("{\"username\":\"alice\xe2\x82"), 400, ""},
		{"JSON truncated at the end", jsonLogin("{\"username\":\"alice\",\"password\":\"alice-pw\"}\xe2\x82"), 200, "alice"},
		{"JSON escaped U+FFFD", jsonLogin(`{"username":"\ufffdalice","password":"\ufffd\ufffd"}`), 200, "\uFFFDalice"},
	}

	caddy := make([]loginResponse, len(cases))
	reqs := make([]loginRequest, len(cases))
	for i, c := range cases {
		caddy[i] = loginSend(t, c.req)
		reqs[i] = c.req
	}
	drf := loginDRF(t, db, reqs)
	keys := djangoTokens(t, db, "alice", "\uFFFDalice", "ÿalice")

	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, want := caddy[i], drf[i]
			t.Logf("request %q %q\nCaddy %v", deref(c.req.ContentType), c.req.Body, got)
			if got.String() != want.String() {
				t.Errorf("Caddy differs from DRF\nCaddy %v\nDRF   %v", got, want)
			}
			if want.Status != c.want {
				t.Errorf("DRF answered %d, the test expects %d: %v", want.Status, c.want, want)
			}
			if c.user != "" {
				if key := got.token(); key == "" || key != keys[c.user] {
					t.Errorf("Caddy's token %q, Django's token for %q %q", key, c.user, keys[c.user])
				}
			}
		})
	}
}
