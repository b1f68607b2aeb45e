package tokenauth

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// A store made by `caddy token` alone, without Django, serves every kind
// of requirement: adduser --staff/--superuser sets the flags, groups
// --add creates the groups and the memberships, and the handler's answers
// follow them.
func TestCLIUsersAndGroupsServeRequirementsWithoutDjango(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.sqlite3")
	flag := "--store=sqlite:" + path
	if r := runCLI(t, "", "migrate", flag); r.code != 0 {
		t.Fatalf("migrate: %v", r)
	}
	keyRE := regexp.MustCompile(`^Generated token ([0-9a-f]{40}) for user (\S+)\n$`)
	keys := map[string]string{}
	for _, u := range []struct {
		name  string
		flags []string
	}{
		{"root", []string{"--superuser"}},
		{"ops", []string{"--staff"}},
		{"boss", []string{"--staff", "--superuser"}},
		{"ed", nil},
		{"joe", nil},
	} {
		args := append([]string{"adduser", u.name, "--password-stdin", "--iterations=100000", flag}, u.flags...)
		r := runCLI(t, "pw-"+u.name+"\n", args...)
		m := keyRE.FindStringSubmatch(r.stdout)
		if r.code != 0 || m == nil {
			t.Fatalf("adduser %s: %v", u.name, r)
		}
		keys[u.name] = m[1]
	}
	for user, want := range map[string]string{"root": "0 1", "ops": "1 0", "boss": "1 1", "ed": "0 0"} {
		if got := sqliteQuery(t, path, `SELECT is_staff || ' ' || is_superuser FROM auth_user WHERE username = ?`, user); got != want {
			t.Errorf("%s: is_staff is_superuser = %s, want %s", user, got, want)
		}
	}

	r := runCLI(t, "", "groups", "ed", "--add", "editors", "--add", "admins", flag)
	if r.code != 0 || r.stdout != "Created group editors\nCreated group admins\nUser ed is in groups: admins, editors\n" || r.stderr != "" {
		t.Errorf("groups ed --add editors --add admins: %v", r)
	}
	r = runCLI(t, "", "groups", "joe", "--add", "editors", flag)
	if r.code != 0 || r.stdout != "User joe is in groups: editors\n" {
		t.Errorf("groups joe --add editors (an existing group): %v", r)
	}
	if n := sqliteQuery(t, path, `SELECT count(*) FROM auth_group`); n != "2" {
		t.Errorf("%s groups, want 2", n)
	}
	r = runCLI(t, "", "groups", "joe", "--remove", "editors", "--remove", "nosuch", flag)
	if r.code != 0 || r.stdout != "User joe is in no group\n" {
		t.Errorf("groups joe --remove editors --remove nosuch: %v", r)
	}
	if r := runCLI(t, "", "groups", "ed", flag); r.code != 0 || r.stdout != "User ed is in groups: admins, editors\n" {
		t.Errorf("groups ed: %v", r)
	}

	raw, _ := json.Marshal(map[string]any{"kind": "sqlite", "path": path})
	handler := func(reqs ...Requirement) *fixture {
		h := &TokenAuth{StoreRaw: raw, Require: reqs}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		if err := h.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Cleanup() })
		return &fixture{h: h}
	}
	for _, c := range []struct {
		name   string
		h      *fixture
		passes []string
	}{
		{"require staff", handler(Requirement{Staff: true}), []string{"ops", "boss"}},
		{"require superuser", handler(Requirement{Superuser: true}), []string{"root", "boss"}},
		{"require group editors", handler(Requirement{Groups: []string{"editors"}}), []string{"ed"}},
		{"require perm auth.view_user", handler(Requirement{Perms: []string{"auth.view_user"}}), []string{"root", "boss"}},
	} {
		for _, user := range []string{"root", "ops", "boss", "ed", "joe"} {
			want := 403
			if contains(c.passes, user) {
				want = 200
			}
			if got := c.h.do(t, "Token "+keys[user]); got.code != want {
				t.Errorf("%s, %s: %d %s, want %d", c.name, user, got.code, got.body, want)
			}
		}
	}
}

func TestCLIGroupsRefusals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.sqlite3")
	flag := "--store=sqlite:" + path
	if r := runCLI(t, "", "migrate", flag); r.code != 0 {
		t.Fatalf("migrate: %v", r)
	}
	if r := runCLI(t, "pw\n", "adduser", "ed", "--password-stdin", "--iterations=100000", flag); r.code != 0 {
		t.Fatalf("adduser: %v", r)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"groups", "nobody", "--add", "editors"}, "user nobody does not exist"},
		{[]string{"groups", "ed", "--add", ""}, "invalid group name: it is blank"},
		{[]string{"groups", "ed", "--add", " editors"}, "starts or ends with whitespace"},
		{[]string{"groups", "ed", "--add", strings.Repeat("é", 151)}, "at most 150 characters (it has 151)"},
		{[]string{"groups"}, "accepts 1 arg(s)"},
	} {
		r := runCLI(t, "", append(tt.args, flag)...)
		if r.code != 1 || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
			t.Errorf("%q: %v, want exit 1 saying %q", tt.args, r, tt.want)
		}
	}
	if n := sqliteQuery(t, path, `SELECT count(*) FROM auth_group`); n != "0" {
		t.Errorf("%s groups after the refusals, want 0", n)
	}
	// What no command line can carry.
	for _, name := range []string{"a\x00b", "\xff"} {
		if err := validGroupName(name); err == nil || !strings.Contains(err.Error(), "without NUL") {
			t.Errorf("group name %q: %v", name, err)
		}
	}
}
