package integration

// Passwords hashed by the real Django (Debian's 3.2, /usr/bin/python3) with
// each of its hashers, checked by Caddy's login endpoint on the Django
// db.sqlite3: Caddy accepts exactly the passwords Django's check_password
// accepts, and rewrites outdated hashes only with upgrade_hashes.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// passwordCheck is one password tried for one user.
type passwordCheck struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// djangoCheckPasswords asks Django's check_password (every hasher
// installed, nothing written back) about each check, and returns the
// answers and the stored values.
func djangoCheckPasswords(t *testing.T, db djangoDB, checks []passwordCheck) (ok []bool, encoded []string) {
	t.Helper()
	var res []struct {
		OK      bool   `json:"ok"`
		Encoded string `json:"encoded"`
	}
	djangoCheck(t, db, "checkpassword", map[string]any{"checks": checks}, &res)
	if len(res) != len(checks) {
		t.Fatalf("drfcheck.py checkpassword: %d answers for %d checks", len(res), len(checks))
	}
	for _, r := range res {
		ok = append(ok, r.OK)
		encoded = append(encoded, r.Encoded)
	}
	return ok, encoded
}

// hasherLogin is the login request for a username and password.
func hasherLogin(t *testing.T, username, password string) loginRequest {
	t.Helper()
	return jsonLogin(jsonObject(t, "username", username, "password", password))
}

func jsonObject(t *testing.T, kv ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%q", kv[i], kv[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

// hasherShape reports whether encoded looks like what Django's hasher of
// that algorithm writes.
func hasherShape(algorithm, encoded string) bool {
	switch algorithm {
	case "unsalted_md5":
		return len(encoded) == 32 && !strings.Contains(encoded, "$")
	case "unsalted_sha1":
		return strings.HasPrefix(encoded, "sha1$$") && len(encoded) == 46
	}
	return strings.HasPrefix(encoded, algorithm+"$")
}

const badLoginBody = `{"non_field_errors":["Unable to log in with provided credentials."]}`

func TestLoginAcceptsEveryDjangoHasher(t *testing.T) {
	djangoRequire(t)
	db := djangoNewDB(t, "sqlite")

	// A bcrypt password longer than bcrypt's 72 bytes: Django's bcrypt
	// hasher (no pre-hash) ignores what follows byte 72, bcrypt_sha256
	// does not.
	long := strings.Repeat("0123456789", 8) // 80 bytes
	type hasherCase struct {
		user newUser
		// tries are passwords besides the right one and a wrong one.
		tries []string
		// unsupported: a hasher Caddy does not implement (Django 3.2's
		// crypt, removed in Django 5.0): Caddy refuses every password.
		unsupported bool
	}
	cases := []hasherCase{
		{user: newUser{Username: "pbkdf2-1000", Password: "pw pbkdf2 1000 ü", Hasher: "pbkdf2_sha256", Iterations: 1000}},
		{user: newUser{Username: "pbkdf2-default", Password: "pw pbkdf2 260000 ü", Hasher: "pbkdf2_sha256"}},
		{user: newUser{Username: "pbkdf2-1000000", Password: "pw pbkdf2 1000000 ü", Hasher: "pbkdf2_sha256", Iterations: 1000000}},
		{user: newUser{Username: "pbkdf2-sha1", Password: "pw pbkdf2_sha1 ü", Hasher: "pbkdf2_sha1"}},
		{user: newUser{Username: "pbkdf2-sha1-1000", Password: "pw pbkdf2_sha1 1000", Hasher: "pbkdf2_sha1", Iterations: 1000}},
		{user: newUser{Username: "argon2", Password: "pw argon2 ü", Hasher: "argon2"}},
		{user: newUser{Username: "bcrypt-sha256", Password: long + "sha256", Hasher: "bcrypt_sha256"}, tries: []string{long + "other tail"}},
		{user: newUser{Username: "bcrypt", Password: long + "bcrypt", Hasher: "bcrypt"}, tries: []string{long + "other tail"}},
		{user: newUser{Username: "md5", Password: "pw md5 ü", Hasher: "md5"}},
		{user: newUser{Username: "sha1", Password: "pw sha1 ü", Hasher: "sha1"}},
		{user: newUser{Username: "unsalted-md5", Password: "pw unsalted md5 ü", Hasher: "unsalted_md5"}, tries: []string{"PW UNSALTED MD5 Ü"}},
		{user: newUser{Username: "unsalted-sha1", Password: "pw unsalted sha1 ü", Hasher: "unsalted_sha1"}},
		{user: newUser{Username: "crypt", Password: "pwcrypt", Hasher: "crypt"}, unsupported: true},
	}
	var users []newUser
	for _, c := range cases {
		c.user.Active, c.user.Token = true, true
		users = append(users, c.user)
	}
	made := djangoMakeUsers(t, db, users...)
	for _, c := range cases {
		t.Logf("%s: %s", c.user.Username, made[c.user.Username].Encoded)
	}

	var checks []passwordCheck
	for _, c := range cases {
		for _, pw := range append([]string{c.user.Password, "wrong " + c.user.Password}, c.tries...) {
			checks = append(checks, passwordCheck{c.user.Username, pw})
		}
	}
	djangoOK, _ := djangoCheckPasswords(t, db, checks)

	loginStartCaddy(t, globalOptions, db, "\t\tlogin "+loginPath)
	i := 0
	for _, c := range cases {
		t.Run(c.user.Hasher+" "+c.user.Username, func(t *testing.T) {
			u := made[c.user.Username]
			if !hasherShape(c.user.Hasher, u.Encoded) {
				t.Errorf("Django stored %q, not a %s hash", u.Encoded, c.user.Hasher)
			}
			for j, pw := range append([]string{c.user.Password, "wrong " + c.user.Password}, c.tries...) {
				ok := djangoOK[i+j]
				if j == 0 && !ok {
					t.Fatalf("Django refuses the right password %q", pw)
				}
				if j == 1 && ok {
					t.Fatalf("Django accepts the wrong password %q", pw)
				}
				got := loginSend(t, hasherLogin(t, c.user.Username, pw))
				switch {
				case c.unsupported:
					// Known difference: Django accepts the right password.
					if got.Status != http.StatusBadRequest || string(got.Body) != badLoginBody {
						t.Errorf("password %q (Django: %v): Caddy %v, want 400 for an unsupported hasher", pw, ok, got)
					}
					if ok {
						t.Logf("known difference: Django accepts %q for %s, Caddy answers %d", pw, u.Encoded, got.Status)
					}
				case ok:
					if got.Status != http.StatusOK || got.token() != *u.Token {
						t.Errorf("password %q, which Django accepts: Caddy %v, want 200 with %s", pw, got, *u.Token)
					}
				default:
					if got.Status != http.StatusBadRequest || string(got.Body) != badLoginBody {
						t.Errorf("password %q, which Django refuses: Caddy %v, want 400", pw, got)
					}
				}
			}
		})
		i += 2 + len(c.tries)
	}

	t.Run("bcrypt ignores bytes after 72, bcrypt_sha256 does not", func(t *testing.T) {
		// The oracle's answers for the "other tail" tries, as Django
		// documents them: the test above compared Caddy with these.
		var bcryptTail, sha256Tail bool
		i := 0
		for _, c := range cases {
			switch c.user.Username {
			case "bcrypt":
				bcryptTail = djangoOK[i+2]
			case "bcrypt-sha256":
				sha256Tail = djangoOK[i+2]
			}
			i += 2 + len(c.tries)
		}
		if !bcryptTail || sha256Tail {
			t.Errorf("Django: bcrypt accepts the other tail %v (want true), bcrypt_sha256 %v (want false)", bcryptTail, sha256Tail)
		}
	})
}

func TestLoginUpgradeHashesLikeDjango(t *testing.T) {
	djangoRequire(t)
	db := djangoNewDB(t, "sqlite")
	const pw = "upgrade me ü"
	made := djangoMakeUsers(t, db,
		newUser{Username: "up-pbkdf2", Password: pw, Hasher: "pbkdf2_sha256", Iterations: 1000, Active: true, Token: true},
		newUser{Username: "up-md5", Password: pw, Hasher: "md5", Active: true, Token: true},
		newUser{Username: "up-wrong", Password: pw, Hasher: "pbkdf2_sha256", Iterations: 1000, Active: true},
		newUser{Username: "up-current", Password: pw, Hasher: "pbkdf2_sha256", Iterations: 1000000, Active: true},
		newUser{Username: "keep-pbkdf2", Password: pw, Hasher: "pbkdf2_sha256", Iterations: 1000, Active: true, Token: true},
		newUser{Username: "keep-md5", Password: pw, Hasher: "md5", Active: true, Token: true},
	)
	stored := func(t *testing.T, usernames ...string) map[string]string {
		t.Helper()
		var checks []passwordCheck
		for _, u := range usernames {
			checks = append(checks, passwordCheck{u, pw}, passwordCheck{u, pw + "!"})
		}
		ok, enc := djangoCheckPasswords(t, db, checks)
		out := make(map[string]string)
		for i, u := range usernames {
			if !ok[2*i] || ok[2*i+1] {
				t.Errorf("%s: Django's check_password on %q: right password %v, wrong %v", u, enc[2*i], ok[2*i], ok[2*i+1])
			}
			out[u] = enc[2*i]
		}
		return out
	}
	login := func(t *testing.T, username, password string, status int) {
		t.Helper()
		got := loginSend(t, hasherLogin(t, username, password))
		if got.Status != status {
			t.Fatalf("login %s: %v, want %d", username, got, status)
		}
		if status == http.StatusOK {
			if want := made[username].Token; want != nil && got.token() != *want {
				t.Errorf("login %s: token %q, Django's %q", username, got.token(), *want)
			}
		}
	}

	t.Run("with upgrade_hashes", func(t *testing.T) {
		loginStartCaddy(t, globalOptions, db, "\t\tlogin "+loginPath+" {\n\t\t\tupgrade_hashes\n\t\t}")
		login(t, "up-pbkdf2", pw, 200)
		login(t, "up-md5", pw, 200)
		login(t, "up-wrong", pw+"!", 400)
		login(t, "up-current", pw, 200)
		after := stored(t, "up-pbkdf2", "up-md5", "up-wrong", "up-current")
		for _, u := range []string{"up-pbkdf2", "up-md5"} {
			parts := strings.Split(after[u], "$")
			if len(parts) != 4 || parts[0] != "pbkdf2_sha256" || parts[1] != "1000000" || len(parts[2]) != 22 {
				t.Errorf("%s after login: stored %q, want pbkdf2_sha256$1000000$<22-char salt>$…", u, after[u])
			}
		}
		for _, u := range []string{"up-wrong", "up-current"} {
			if after[u] != made[u].Encoded {
				t.Errorf("%s: stored %q changed to %q", u, made[u].Encoded, after[u])
			}
		}
		// The new hash works in Caddy too.
		login(t, "up-md5", pw, 200)
		login(t, "up-md5", pw+"!", 400)
	})

	t.Run("without upgrade_hashes", func(t *testing.T) {
		loginStartCaddy(t, globalOptions, db, "\t\tlogin "+loginPath)
		login(t, "keep-pbkdf2", pw, 200)
		login(t, "keep-md5", pw, 200)
		after := stored(t, "keep-pbkdf2", "keep-md5")
		for _, u := range []string{"keep-pbkdf2", "keep-md5"} {
			if after[u] != made[u].Encoded {
				t.Errorf("%s: stored %q changed to %q without upgrade_hashes", u, made[u].Encoded, after[u])
			}
		}
	})
}
