package tokenauth

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokenauth/caddy-tokenauth/internal/cache"
	"github.com/tokenauth/caddy-tokenauth/store"
	"github.com/tokenauth/caddy-tokenauth/store/sqlite"
)

// permFixture is a Django db.sqlite3 with every table, and users of each
// kind the requirements tell apart, each with a token:
//
//	staff     is_staff
//	super     is_superuser, not is_staff
//	editor    in the group editors
//	reporter  in the group reporters, which has reports.view_report
//	direct    has reports.view_report of its own
//	staffer   is_staff, in reporters
//	multi     in admins, editors and ops
//	plain     nothing
//	sleepy    inactive, in editors, has reports.view_report
type permFixture struct {
	path string
	db   *sql.DB // the test's own handle, as Django's
	keys map[string]string
	ids  map[string]string
}

var permUsers = []struct {
	name             string
	staff, superuser bool
	active           bool
	groups           []string
	perms            []string
}{
	{name: "staff", staff: true, active: true},
	{name: "super", superuser: true, active: true},
	{name: "editor", active: true, groups: []string{"editors"}},
	{name: "reporter", active: true, groups: []string{"reporters"}},
	{name: "direct", active: true, perms: []string{"view_report"}},
	{name: "staffer", staff: true, active: true, groups: []string{"reporters"}},
	{name: "multi", active: true, groups: []string{"ops", "admins", "editors"}},
	{name: "plain", active: true},
	{name: "sleepy", active: false, groups: []string{"editors"}, perms: []string{"view_report"}},
}

func newPermFixture(t testing.TB) *permFixture {
	t.Helper()
	f := &permFixture{path: filepath.Join(t.TempDir(), "db.sqlite3"), keys: map[string]string{}, ids: map[string]string{}}
	db, err := sql.Open("sqlite", "file:"+f.path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f.db = db
	f.exec(t, append(append([]string{}, sqlite.Schema...), sqlite.PermissionsSchema...)...)
	f.exec(t, `INSERT INTO django_content_type (app_label, model) VALUES ('reports', 'report')`,
		`INSERT INTO auth_permission (content_type_id, codename, name) SELECT id, 'view_report', 'Can view report' FROM django_content_type`,
		`INSERT INTO auth_permission (content_type_id, codename, name) SELECT id, 'add_report', 'Can add report' FROM django_content_type`)
	for _, g := range []string{"editors", "reporters", "admins", "ops"} {
		f.exec(t, `INSERT INTO auth_group (name) VALUES ('`+g+`')`)
	}
	f.exec(t, `INSERT INTO auth_group_permissions (group_id, permission_id) SELECT g.id, p.id FROM auth_group g, auth_permission p WHERE g.name = 'reporters' AND p.codename = 'view_report'`)
	for _, u := range permUsers {
		f.exec(t, fmt.Sprintf(`INSERT INTO auth_user (password, is_superuser, username, last_name, email, is_staff, is_active, date_joined, first_name) VALUES ('!', %v, '%s', '', '', %v, %v, '2026-01-01 00:00:00', '')`,
			u.superuser, u.name, u.staff, u.active))
		key := store.GenerateKey()
		f.keys[u.name] = key
		f.exec(t, `INSERT INTO authtoken_token (key, created, user_id) SELECT '`+key+`', '2026-01-01 00:00:00', id FROM auth_user WHERE username = '`+u.name+`'`)
		for _, g := range u.groups {
			f.exec(t, `INSERT INTO auth_user_groups (user_id, group_id) SELECT u.id, g.id FROM auth_user u, auth_group g WHERE u.username = '`+u.name+`' AND g.name = '`+g+`'`)
		}
		for _, p := range u.perms {
			f.exec(t, `INSERT INTO auth_user_user_permissions (user_id, permission_id) SELECT u.id, p.id FROM auth_user u, auth_permission p WHERE u.username = '`+u.name+`' AND p.codename = '`+p+`'`)
		}
		var id string
		if err := db.QueryRow(`SELECT CAST(id AS TEXT) FROM auth_user WHERE username = ?`, u.name).Scan(&id); err != nil {
			t.Fatal(err)
		}
		f.ids[u.name] = id
	}
	return f
}

func (f *permFixture) exec(t testing.TB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := f.db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// handler provisions a token_auth on the fixture's file, set up by
// configure.
func (f *permFixture) handler(t testing.TB, configure func(*TokenAuth)) *TokenAuth {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"kind": "sqlite", "path": f.path})
	h := &TokenAuth{StoreRaw: raw}
	if configure != nil {
		configure(h)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Cleanup() })
	return h
}

// permResult is what a request got, and the placeholders the next handler
// saw.
type permResult struct {
	code       int
	body       string
	challenge  string
	nextCalled bool
	vars       map[string]string // known placeholders
}

func (r permResult) String() string {
	return fmt.Sprintf("%d %s challenge=%q next=%v %v", r.code, r.body, r.challenge, r.nextCalled, r.vars)
}

var permPlaceholders = []string{placeholderUserID, placeholderUsername, placeholderStaff, placeholderSuperuser, placeholderGroups}

// serve sends method path with the user's token (none for "", a bad one
// for "bad") through h.
func (f *permFixture) serve(t testing.TB, h *TokenAuth, method, path, user string) permResult {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	switch user {
	case "":
	case "bad":
		req.Header.Set("Authorization", "Token "+strings.Repeat("0", 40))
	default:
		req.Header.Set("Authorization", "Token "+f.keys[user])
	}
	rec := httptest.NewRecorder()
	repl := caddy.NewReplacer()
	req = caddyhttp.PrepareRequest(req, repl, rec, nil)
	res := permResult{vars: map[string]string{}}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		res.nextCalled = true
		w.WriteHeader(http.StatusOK)
		return nil
	})
	if err := h.ServeHTTP(rec, req, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	res.code, res.body, res.challenge = rec.Code, rec.Body.String(), rec.Header().Get("WWW-Authenticate")
	for _, p := range permPlaceholders {
		if v, ok := repl.GetString(p); ok {
			res.vars[p] = v
		}
	}
	return res
}

const (
	bodyNotProvided = `{"detail":"Authentication credentials were not provided."}`
	bodyForbidden   = `{"detail":"You do not have permission to perform this action."}`
	bodyInactive    = `{"detail":"User inactive or deleted."}`
	bodyInvalid     = `{"detail":"Invalid token."}`
)

// The answers of each requirement to each kind of user and method, as DRF
// gives them (integration/permissions_test.go checks them against the
// real DRF): 200 when every requirement holds, 403 without a challenge to
// an authenticated user one refuses, DRF's 401 to a request without
// credentials, and the token's own 401 before any requirement.
func TestRequirementsAnswerAsDRF(t *testing.T) {
	f := newPermFixture(t)
	configs := []struct {
		name   string
		config func(*TokenAuth)
		passes []string // the users who pass, on every method
	}{
		{"require staff (IsAdminUser)", func(h *TokenAuth) { h.Require = []Requirement{{Staff: true}} }, []string{"staff", "staffer"}},
		{"require superuser", func(h *TokenAuth) { h.Require = []Requirement{{Superuser: true}} }, []string{"super"}},
		{"require group editors admins", func(h *TokenAuth) { h.Require = []Requirement{{Groups: []string{"editors", "admins"}}} }, []string{"editor", "multi"}},
		{"require perm reports.view_report", func(h *TokenAuth) { h.Require = []Requirement{{Perms: []string{"reports.view_report"}}} },
			[]string{"super", "reporter", "direct", "staffer"}},
		{"require perm reports.view_report, require staff", func(h *TokenAuth) {
			h.Require = []Requirement{{Perms: []string{"reports.view_report"}}, {Staff: true}}
		}, []string{"staffer"}},
		{"require staff superuser (either)", func(h *TokenAuth) { h.Require = []Requirement{{Staff: true, Superuser: true}} }, []string{"staff", "super", "staffer"}},
		{"require group ops perm reports.add_report (either)", func(h *TokenAuth) {
			h.Require = []Requirement{{Groups: []string{"ops"}, Perms: []string{"reports.add_report"}}}
		}, []string{"super", "multi"}},
		{"no requirement", nil, []string{"staff", "super", "editor", "reporter", "direct", "staffer", "multi", "plain"}},
	}
	users := []string{"staff", "super", "editor", "reporter", "direct", "staffer", "multi", "plain", "sleepy", "", "bad"}
	methods := []string{"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"}
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			h := f.handler(t, c.config)
			for _, user := range users {
				for _, m := range methods {
					got := f.serve(t, h, m, "/api/", user)
					var want permResult
					switch {
					case user == "":
						want = permResult{code: 401, body: bodyNotProvided, challenge: "Token"}
					case user == "bad":
						want = permResult{code: 401, body: bodyInvalid, challenge: "Token"}
					case user == "sleepy":
						want = permResult{code: 401, body: bodyInactive, challenge: "Token"}
					case contains(c.passes, user):
						want = permResult{code: 200, nextCalled: true}
					default:
						want = permResult{code: 403, body: bodyForbidden}
					}
					if got.code != want.code || got.body != want.body || got.challenge != want.challenge || got.nextCalled != want.nextCalled {
						t.Errorf("%s %q: got %v, want %v", m, user, got, want)
					}
				}
			}
		})
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// optional read_only is IsAuthenticatedOrReadOnly: GET, HEAD and OPTIONS
// pass without credentials, any other method gets DRF's 401; a bad key is
// refused on every method; a user's key passes on every method.
func TestOptionalReadOnlyIsAuthenticatedOrReadOnly(t *testing.T) {
	f := newPermFixture(t)
	for _, noChallenge := range []bool{false, true} {
		h := f.handler(t, func(h *TokenAuth) { h.Optional, h.ReadOnly, h.NoChallenge = true, true, noChallenge })
		status, challenge := 401, "Token"
		if noChallenge {
			status, challenge = 403, ""
		}
		for _, m := range []string{"GET", "HEAD", "OPTIONS", "get", "POST", "PUT", "PATCH", "DELETE", "PROPFIND"} {
			safe := m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "get"
			got := f.serve(t, h, m, "/api/", "")
			if safe && (got.code != 200 || !got.nextCalled || got.vars[placeholderUserID] != "") {
				t.Errorf("no_challenge %v: anonymous %s: %v, want to pass", noChallenge, m, got)
			}
			if !safe && (got.code != status || got.body != bodyNotProvided || got.challenge != challenge || got.nextCalled) {
				t.Errorf("no_challenge %v: anonymous %s: %v, want %d not provided", noChallenge, m, got, status)
			}
			if got := f.serve(t, h, m, "/api/", "bad"); got.code != status || got.body != bodyInvalid {
				t.Errorf("no_challenge %v: bad key %s: %v, want %d Invalid token.", noChallenge, m, got, status)
			}
			if got := f.serve(t, h, m, "/api/", "plain"); got.code != 200 || got.vars[placeholderUsername] != "plain" {
				t.Errorf("no_challenge %v: plain's key %s: %v, want 200", noChallenge, m, got)
			}
		}
	}
}

// Under no_challenge a request without credentials that a requirement
// needs authenticated gets 403 with DRF's "not provided" body; a user the
// requirement refuses, the same 403 as ever.
func TestNoChallengeRequirementAnswers(t *testing.T) {
	f := newPermFixture(t)
	h := f.handler(t, func(h *TokenAuth) { h.NoChallenge, h.Require = true, []Requirement{{Staff: true}} })
	if got := f.serve(t, h, "GET", "/", ""); got.code != 403 || got.body != bodyNotProvided || got.challenge != "" {
		t.Errorf("anonymous: %v", got)
	}
	if got := f.serve(t, h, "GET", "/", "plain"); got.code != 403 || got.body != bodyForbidden || got.challenge != "" {
		t.Errorf("plain: %v", got)
	}
}

// A refused user's identity is known to the access log; the next handler
// never runs.
func TestForbiddenSetsTheIdentityForTheLog(t *testing.T) {
	f := newPermFixture(t)
	h := f.handler(t, func(h *TokenAuth) { h.Require = []Requirement{{Staff: true}} })
	got := f.serve(t, h, "GET", "/", "plain")
	if got.code != 403 || got.nextCalled || got.vars[placeholderUserID] != f.ids["plain"] || got.vars[placeholderUsername] != "plain" {
		t.Errorf("got %v, want 403 with plain's identity", got)
	}
}

// The logout endpoint is only for an authenticated user (knox's
// LogoutView): requirements do not apply to it.
func TestLogoutIsNotSubjectToRequirements(t *testing.T) {
	f := newPermFixture(t)
	h := f.handler(t, func(h *TokenAuth) { h.Logout, h.Require = "/logout/", []Requirement{{Staff: true}} })
	if got := f.serve(t, h, "POST", "/logout/", "plain"); got.code != 204 {
		t.Fatalf("plain's logout: %v, want 204", got)
	}
	if got := f.serve(t, h, "GET", "/", "plain"); got.code != 401 || got.body != bodyInvalid {
		t.Errorf("after logout: %v, want 401 Invalid token.", got)
	}
}

// The placeholders: is_staff and is_superuser wherever a handler of the
// store requires anything (also on a handler of the same store that
// requires nothing), groups where one requires a group, joined with ","
// in bytewise order; none of them where nothing is required; false, false
// and empty on a request let through without credentials.
func TestPermissionPlaceholders(t *testing.T) {
	f := newPermFixture(t)
	t.Run("nothing required", func(t *testing.T) {
		h := f.handler(t, nil)
		got := f.serve(t, h, "GET", "/", "multi")
		for _, p := range []string{placeholderStaff, placeholderSuperuser, placeholderGroups} {
			if v, ok := got.vars[p]; ok {
				t.Errorf("{%s} = %q, want unknown", p, v)
			}
		}
	})
	t.Run("require staff", func(t *testing.T) {
		h := f.handler(t, func(h *TokenAuth) { h.Require = []Requirement{{Staff: true, Superuser: true}} })
		for user, want := range map[string][2]string{"staff": {"true", "false"}, "super": {"false", "true"}} {
			got := f.serve(t, h, "GET", "/", user)
			if got.vars[placeholderStaff] != want[0] || got.vars[placeholderSuperuser] != want[1] {
				t.Errorf("%s: %v, want is_staff %s, is_superuser %s", user, got.vars, want[0], want[1])
			}
			if v, ok := got.vars[placeholderGroups]; ok {
				t.Errorf("%s: {%s} = %q without a group required, want unknown", user, placeholderGroups, v)
			}
		}
	})
	t.Run("require group", func(t *testing.T) {
		h := f.handler(t, func(h *TokenAuth) { h.Require = []Requirement{{Groups: []string{"editors"}}} })
		other := f.handler(t, func(h *TokenAuth) { h.Optional = true })
		if got := f.serve(t, h, "GET", "/", "multi"); got.vars[placeholderGroups] != "admins,editors,ops" || got.vars[placeholderStaff] != "false" {
			t.Errorf("multi: %v, want groups admins,editors,ops", got.vars)
		}
		for _, user := range []string{"multi", "plain"} {
			want := map[string]string{"multi": "admins,editors,ops", "plain": ""}[user]
			got := f.serve(t, other, "GET", "/", user)
			if v, ok := got.vars[placeholderGroups]; !ok || v != want || got.vars[placeholderStaff] != "false" {
				t.Errorf("%s on a handler of the same store without require: %v, want groups %q", user, got.vars, want)
			}
		}
		got := f.serve(t, other, "GET", "/", "")
		want := map[string]string{placeholderUserID: "", placeholderUsername: "", placeholderStaff: "false", placeholderSuperuser: "false", placeholderGroups: ""}
		if fmt.Sprint(got.vars) != fmt.Sprint(want) {
			t.Errorf("anonymous: %v, want %v", got.vars, want)
		}
	})
}

// permCounter counts the permission queries of a store.
type permCounter struct {
	store.Permissions
	n atomic.Int64
}

func (c *permCounter) UserPermissions(ctx context.Context, userID string) (store.UserPermissions, error) {
	c.n.Add(1)
	return c.Permissions.UserPermissions(ctx, userID)
}

// Groups and permissions are read only where a handler requires
// something, once per lookup of a key the cache does not hold, and never
// for an inactive user; a cache hit reads nothing.
func TestPermissionsAreReadOnlyWhenRequiredAndOncePerMiss(t *testing.T) {
	f := newPermFixture(t)
	count := func(h *TokenAuth) *permCounter {
		c := &permCounter{Permissions: h.perms.permStore}
		h.perms.permStore = c
		return c
	}
	plain := f.handler(t, nil)
	c := count(plain)
	for range 3 {
		f.serve(t, plain, "GET", "/", "multi")
	}
	if n := c.n.Load(); n != 0 {
		t.Errorf("no requirement: %d permission queries, want 0", n)
	}

	h := f.handler(t, func(h *TokenAuth) { h.Require = []Requirement{{Groups: []string{"editors"}}} })
	c = count(h)
	for range 3 {
		f.serve(t, h, "GET", "/", "multi")
		f.serve(t, h, "GET", "/", "sleepy")
	}
	if n := c.n.Load(); n != 1 {
		t.Errorf("with a requirement: %d permission queries for one active user's key, three times, and an inactive one's; want 1", n)
	}

	off := f.handler(t, func(h *TokenAuth) {
		h.Require = []Requirement{{Staff: true}}
		h.Cache = &Cache{Off: true}
	})
	c = count(off)
	for range 3 {
		f.serve(t, off, "GET", "/", "staff")
	}
	if n := c.n.Load(); n != 3 {
		t.Errorf("cache off: %d permission queries for three requests, want 3 (as DRF, every time)", n)
	}
}

// A user deleted between the token's lookup and the permissions' query is
// an unknown key.
func TestUserGoneBeforeThePermissionsIsAnUnknownKey(t *testing.T) {
	f := newPermFixture(t)
	h := f.handler(t, func(h *TokenAuth) {
		h.Require = []Requirement{{Staff: true}}
		h.Cache = &Cache{Off: true}
	})
	h.perms.permStore = goneStore{}
	if got := f.serve(t, h, "GET", "/", "staff"); got.code != 401 || got.body != bodyInvalid {
		t.Errorf("got %v, want 401 Invalid token.", got)
	}
}

type goneStore struct{ store.Permissions }

func (goneStore) UserPermissions(context.Context, string) (store.UserPermissions, error) {
	return store.UserPermissions{}, fmt.Errorf("user: %w", store.ErrNoUser)
}

// A database without Django's tables of groups and permissions (one an
// older token_auth made) cannot answer a requirement: 503, never a pass.
func TestNoPermissionTablesAnswers503(t *testing.T) {
	fx := newFixture(t, nil, nil)
	raw, _ := json.Marshal(map[string]any{"kind": "sqlite", "path": fx.path})
	h := &TokenAuth{StoreRaw: raw, Require: []Requirement{{Staff: true}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	fx.h = h
	if r := fx.do(t, "Token "+fx.alice); r.code != 503 || r.nextCalled {
		t.Errorf("got %+v, want 503", r)
	}
}

// Every change to what a requirement reads, made behind Caddy's back,
// reaches the cache within the SQLite store's poll interval: a group
// membership removed, a group's permission removed, is_staff cleared, a
// group renamed, a permission granted.
func TestPermissionChangesReachTheCache(t *testing.T) {
	f := newPermFixture(t)
	h := f.handler(t, func(h *TokenAuth) {
		h.Require = []Requirement{{Groups: []string{"editors"}}}
	})
	perm := f.handler(t, func(h *TokenAuth) { h.Require = []Requirement{{Perms: []string{"reports.view_report"}}} })
	staff := f.handler(t, func(h *TokenAuth) { h.Require = []Requirement{{Staff: true}} })
	add := f.handler(t, func(h *TokenAuth) { h.Require = []Requirement{{Perms: []string{"reports.add_report"}}} })
	for _, c := range []struct {
		name   string
		h      *TokenAuth
		user   string
		change string
		before int
		after  int
	}{
		{"membership removed", h, "editor", `DELETE FROM auth_user_groups WHERE user_id = (SELECT id FROM auth_user WHERE username = 'editor')`, 200, 403},
		{"group's permission removed", perm, "reporter", `DELETE FROM auth_group_permissions`, 200, 403},
		{"is_staff cleared", staff, "staff", `UPDATE auth_user SET is_staff = 0 WHERE username = 'staff'`, 200, 403},
		{"group renamed", h, "multi", `UPDATE auth_group SET name = 'writers' WHERE name = 'editors'`, 200, 403},
		{"permission granted", add, "plain", `INSERT INTO auth_user_user_permissions (user_id, permission_id) SELECT u.id, p.id FROM auth_user u, auth_permission p WHERE u.username = 'plain' AND p.codename = 'add_report'`, 403, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := f.serve(t, c.h, "GET", "/", c.user); got.code != c.before {
				t.Fatalf("before: %v, want %d", got, c.before)
			}
			f.serve(t, c.h, "GET", "/", c.user) // cached
			f.exec(t, c.change)
			start := time.Now()
			for {
				got := f.serve(t, c.h, "GET", "/", c.user)
				if got.code == c.after {
					break
				}
				if time.Since(start) > time.Second {
					t.Fatalf("1s after the change: %v, want %d", got, c.after)
				}
				time.Sleep(2 * time.Millisecond)
			}
			if el := time.Since(start); el > 200*time.Millisecond {
				t.Errorf("the change took %v to reach the cache, want within a few poll intervals (25ms)", el)
			}
		})
	}
}

func TestCaddyfileRequireAndReadOnly(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"staff", "require staff", `{"require":[{"staff":true}]}`},
		{"superuser", "require superuser", `{"require":[{"superuser":true}]}`},
		{"groups", "require group editors admins", `{"require":[{"groups":["editors","admins"]}]}`},
		{"perm", "require perm reports.view_report", `{"require":[{"perms":["reports.view_report"]}]}`},
		{"lines add up", "require perm reports.view_report\n require staff", `{"require":[{"perms":["reports.view_report"]},{"staff":true}]}`},
		{"alternatives on a line", "require staff superuser group ops perm a.b c.d group x",
			`{"require":[{"staff":true,"superuser":true,"groups":["ops","x"],"perms":["a.b","c.d"]}]}`},
		{"a group named staff", "require group staff superuser", `{"require":[{"groups":["staff","superuser"]}]}`},
		{"optional read_only", "optional read_only", `{"optional":true,"read_only":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h TokenAuth
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("token_auth {\n " + tt.input + "\n}")); err != nil {
				t.Fatal(err)
			}
			if got, _ := json.Marshal(h); string(got) != tt.want {
				t.Errorf("got %s\nwant %s", got, tt.want)
			}
		})
	}
	for _, tt := range []struct{ name, input, want string }{
		{"require alone", "require", "wrong argument count"},
		{"group without a name", "require group", "require group: want at least one name"},
		{"perm without a name before group", "require perm group x", "require perm: want at least one name"},
		{"unknown word", "require admin", `require "admin": want staff, superuser`},
		{"optional with another word", "optional write_only", `optional "write_only"`},
		{"bad perm", "require perm view_report", "want <app_label>.<codename>"},
		{"optional with require", "require staff\n optional", "optional with require"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h TokenAuth
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("token_auth {\n " + tt.input + "\n}"))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("%s: %v, want %q with the line", tt.input, err, tt.want)
			}
		})
	}
}

// The Caddyfile and the JSON refuse the same requirements, by validate's
// rule.
func TestCaddyfileAndJSONRefuseTheSameRequirements(t *testing.T) {
	path := newPermFixture(t).path
	long := strings.Repeat("g", groupNameMaxLength+1)
	var many []string
	for i := range maxNames + 1 {
		many = append(many, fmt.Sprintf("g%d", i))
	}
	manyJSON, _ := json.Marshal(many)
	tests := []struct {
		name, caddyfile, json, want string
	}{
		{"read_only without optional", "", `{"read_only":true}`, "read_only needs optional"},
		{"optional with require", "optional\n require staff", `{"optional":true,"require":[{"staff":true}]}`, "optional with require"},
		{"read_only with require", "optional read_only\n require staff", `{"optional":true,"read_only":true,"require":[{"staff":true}]}`, "optional with require"},
		{"empty requirement", "", `{"require":[{}]}`, "needs staff, superuser, groups or perms"},
		{"perm without a dot", "require perm view_report", `{"require":[{"perms":["view_report"]}]}`, "want <app_label>.<codename>"},
		{"perm without an app label", "require perm .view_report", `{"require":[{"perms":[".view_report"]}]}`, "want <app_label>.<codename>"},
		{"perm without a codename", "require perm reports.", `{"require":[{"perms":["reports."]}]}`, "want <app_label>.<codename>"},
		{"empty group name", `require group ""`, `{"require":[{"groups":[""]}]}`, "want a group name of 1 to 150"},
		{"group name over 150 characters", "require group " + long, `{"require":[{"groups":["` + long + `"]}]}`, "want a group name of 1 to 150"},
		{"too many names", "require group " + strings.Join(many, " "), `{"require":[{"groups":` + string(manyJSON) + `}]}`, "at most 62"},
		{"valid", "require staff\n require group a b perm x.y", `{"require":[{"staff":true},{"groups":["a","b"],"perms":["x.y"]}]}`, ""},
		{"valid read_only", "optional read_only", `{"optional":true,"read_only":true}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fromJSON TokenAuth
			if err := json.Unmarshal([]byte(tt.json), &fromJSON); err != nil {
				t.Fatal(err)
			}
			fromJSON.StoreRaw = json.RawMessage(`{"kind":"sqlite","path":"` + path + `"}`)
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			errs := map[string]error{"JSON": fromJSON.Provision(ctx)}
			fromJSON.Cleanup()
			cancel()
			if tt.caddyfile != "" {
				var fromFile TokenAuth
				errs["Caddyfile"] = fromFile.UnmarshalCaddyfile(caddyfile.NewTestDispenser("token_auth {\n " + tt.caddyfile + "\n}"))
				if tt.want == "" {
					got, _ := json.Marshal(fromFile)
					if string(got) != tt.json {
						t.Errorf("the Caddyfile gives %s, want %s", got, tt.json)
					}
				}
			}
			for what, err := range errs {
				switch {
				case tt.want == "" && err != nil:
					t.Errorf("%s refused a valid config: %v", what, err)
				case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
					t.Errorf("%s: %v, want an error with %q", what, err, tt.want)
				}
			}
		})
	}
}

// A store that cannot answer a requirement is refused at provision.
func TestRequireNeedsAStoreWithPermissions(t *testing.T) {
	f := newPermFixture(t)
	h := f.handler(t, nil)
	h2 := &TokenAuth{Require: []Requirement{{Staff: true}}, store: h.store.(store.Store)}
	h2.store = struct{ store.Store }{h.store}
	if err := h2.provisionPermissions("x"); err == nil || !strings.Contains(err.Error(), "does not implement store.Permissions") {
		t.Errorf("got %v", err)
	}
	h2.cleanupPermissions()
}

// A name keeps its bit while any handler requires it, whoever else comes
// and goes; a freed bit goes to the next new name; more than 62 names at
// once are refused, and the refusal takes nothing.
func TestNameBitsAreSharedAndReused(t *testing.T) {
	var tbl nameTable
	a, b, c := nameKey{name: "a"}, nameKey{perm: true, name: "a"}, nameKey{name: "c"}
	first, err := tbl.acquire([]nameKey{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if first[a] == first[b] {
		t.Fatalf("group a and perm a share bit %d", first[a])
	}
	second, _ := tbl.acquire([]nameKey{a, c})
	if second[a] != first[a] {
		t.Errorf("a moved from bit %d to %d", first[a], second[a])
	}
	if got := tbl.bits([]string{"a", "c"}, []string{"a", "zzz"}); got != 1<<first[a]|1<<first[b]|1<<second[c] {
		t.Errorf("bits = %b", got)
	}
	tbl.release([]nameKey{a, b})
	if got := tbl.bits([]string{"a"}, []string{"a"}); got != 1<<first[a] {
		t.Errorf("after one release of a and b: bits %b, want a's alone", got)
	}
	d := nameKey{name: "d"}
	third, _ := tbl.acquire([]nameKey{d})
	if third[d] != first[b] {
		t.Errorf("d got bit %d, want b's freed bit %d", third[d], first[b])
	}
	var many []nameKey
	for i := range maxNames {
		many = append(many, nameKey{name: fmt.Sprint("n", i)})
	}
	if _, err := tbl.acquire(many); err == nil || !strings.Contains(err.Error(), "more than 62") {
		t.Fatalf("62 more names: %v", err)
	}
	if got := tbl.bits([]string{"n0", "n1"}, nil); got != 0 {
		t.Errorf("a refused acquire left bits %b", got)
	}
	if _, err := tbl.acquire(many[:maxNames-3]); err != nil {
		t.Errorf("59 names beside a, c and d: %v", err)
	}
}

// A cache hit on a route that requires a group and a permission gives
// the request its identity and placeholders without allocating.
func TestCacheHitWithRequirementsAllocatesNothing(t *testing.T) {
	f := newPermFixture(t)
	h := f.handler(t, requireGroupAndPerm)
	req, rec, next := permHitRequest(f)
	if err := h.ServeHTTP(rec, prepare(req, rec), next); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 200 {
		t.Fatalf("staffer: %d %s", rec.Code, rec.Body)
	}
	var r *http.Request
	preparing := testing.AllocsPerRun(500, func() { r = prepare(req, rec) })
	serving := testing.AllocsPerRun(500, func() {
		r = prepare(req, rec)
		if err := h.ServeHTTP(rec, r, next); err != nil {
			t.Fatal(err)
		}
	})
	if serving != preparing {
		t.Fatalf("a cache hit allocates %v times", serving-preparing)
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	for _, p := range []string{placeholderStaff, placeholderGroups} {
		if n := testing.AllocsPerRun(100, func() { _, _ = repl.Get(p) }); n != 0 {
			t.Errorf("reading {%s} allocates %v times", p, n)
		}
	}
}

// requireGroupAndPerm is a route with `require group editors reporters`
// and `require perm reports.view_report`.
func requireGroupAndPerm(h *TokenAuth) {
	h.Require = []Requirement{{Groups: []string{"editors", "reporters"}}, {Perms: []string{"reports.view_report"}}}
}

func permHitRequest(f *permFixture) (*http.Request, *httptest.ResponseRecorder, caddyhttp.Handler) {
	req := httptest.NewRequest(http.MethodGet, "/api/", nil)
	req.Header.Set("Authorization", "Token "+f.keys["staffer"])
	rec := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	return req, rec, next
}

// BenchmarkServeHTTPCacheHitRequire is BenchmarkServeHTTPCacheHit on a
// route with `require group` and `require perm`.
func BenchmarkServeHTTPCacheHitRequire(b *testing.B) {
	f := newPermFixture(b)
	h := f.handler(b, requireGroupAndPerm)
	req, rec, next := permHitRequest(f)
	batch := make([]*http.Request, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		b.StopTimer()
		n := min(len(batch), b.N-i)
		for j := range n {
			batch[j] = prepare(req, rec)
		}
		b.StartTimer()
		for _, r := range batch[:n] {
			if err := h.ServeHTTP(rec, r, next); err != nil {
				b.Fatal(err)
			}
		}
		i += n
	}
	if rec.Code != 200 {
		b.Fatalf("staffer: %d", rec.Code)
	}
}

// BenchmarkCacheMemoryPerIdentityWithGroups is BenchmarkCacheMemoryPerEntry
// for identities whose users are in three groups, on a store where a
// handler requires a group (the names are kept for
// {http.auth.user.groups}) and a permission the users have.
func BenchmarkCacheMemoryPerIdentityWithGroups(b *testing.B) {
	const n = 1_000_000
	ctx := context.Background()
	keys, err := names.acquire([]nameKey{{name: "editors"}, {perm: true, name: "reports.view_report"}})
	if err != nil {
		b.Fatal(err)
	}
	_ = keys
	defer names.release([]nameKey{{name: "editors"}, {perm: true, name: "reports.view_report"}})
	sp := store.UserPermissions{Staff: true, Groups: []string{"admins", "editors", "reviewers"}, Perms: []string{"reports.view_report"}}
	i := 0
	load := func(context.Context, string) (cachedIdentity, error) {
		return permsIdentity(store.Identity{ID: fmt.Sprint(i + 1), Username: fmt.Sprintf("user%07d", i), Active: true}, nil, newUserPerms(sp, true)), nil
	}
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := cache.New[cachedIdentity](time.Minute, time.Minute, n, store.ErrNotFound)
		for i = 0; i < n; i++ {
			_, _ = c.Lookup(ctx, randomKey(i), load)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		pos, _ := c.Len()
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(pos), "bytes/identity")
		runtime.KeepAlive(c)
		c.Close()
	}
}

// With knox tokens (many a user), the tokens of one user share one
// permissions query until the cache changes; an inactive user's token is
// refused before any.
func TestKnoxTokensOfOneUserShareOnePermissionsQuery(t *testing.T) {
	kf := newKnoxFixture(t, func(h *TokenAuth) { h.Require = []Requirement{{Groups: []string{"editors"}}} })
	kf.h.perms.permStore = &permCounter{Permissions: kf.h.perms.permStore}
	c := kf.h.perms.permStore.(*permCounter)
	live, never := kf.tokens["uma live"].Token, kf.tokens["uma never"].Token
	for range 2 {
		for _, tok := range []string{live, never} {
			if r := kf.do(t, "Token "+tok); r.code != 403 || r.body != bodyForbidden {
				t.Fatalf("uma, in no group: %+v, want 403", r)
			}
		}
	}
	if n := c.n.Load(); n != 1 {
		t.Errorf("%d permission queries for two tokens of one user, twice each; want 1", n)
	}
	kf.exec(t, `INSERT INTO auth_group (name) VALUES ('editors')`,
		`INSERT INTO auth_user_groups (user_id, group_id) SELECT u.id, g.id FROM auth_user u, auth_group g WHERE u.username = 'uma'`)
	eventually(t, "uma's membership reaches both tokens", func() bool {
		return kf.do(t, "Token "+live).code == 200 && kf.do(t, "Token "+never).code == 200
	})
	if n := c.n.Load(); n != 2 {
		t.Errorf("%d permission queries after the change, want 2 (one more, for both tokens)", n)
	}
	if r := kf.do(t, "Token "+kf.tokens["wendy live"].Token); r.code != 401 {
		t.Errorf("wendy (inactive): %+v, want 401", r)
	}
	if n := c.n.Load(); n != 2 {
		t.Errorf("an inactive user's token made a permissions query")
	}
}

func (kf *knoxFixture) exec(t testing.TB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := kf.db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// A user a requirement refuses counts as forbidden, a request read_only
// refuses as not provided, one it lets through as anonymous.
func TestRequirementOutcomesAreCounted(t *testing.T) {
	f := newPermFixture(t)
	staff := f.handler(t, func(h *TokenAuth) { h.Require = []Requirement{{Staff: true}} })
	ro := f.handler(t, func(h *TokenAuth) { h.Optional, h.ReadOnly = true, true })
	f.serve(t, staff, "GET", "/", "staff") // cache the identities first: the
	f.serve(t, staff, "GET", "/", "plain") // counts below are one per request
	before := []float64{testutil.ToFloat64(requestsForbidden), testutil.ToFloat64(requestsPassed),
		testutil.ToFloat64(requestsNotProvided), testutil.ToFloat64(requestsAnonymous)}
	f.serve(t, staff, "GET", "/", "plain")
	f.serve(t, staff, "GET", "/", "staff")
	f.serve(t, ro, "POST", "/", "")
	f.serve(t, ro, "GET", "/", "")
	f.serve(t, ro, "HEAD", "/", "")
	after := []float64{testutil.ToFloat64(requestsForbidden), testutil.ToFloat64(requestsPassed),
		testutil.ToFloat64(requestsNotProvided), testutil.ToFloat64(requestsAnonymous)}
	for i, name := range []string{"forbidden", "passed", "not_provided", "anonymous"} {
		want := []float64{1, 1, 1, 2}[i]
		if got := after[i] - before[i]; got != want {
			t.Errorf("%s counted %v times, want %v", name, got, want)
		}
	}
}

// notPushed is a store whose changes to permissions are not pushed
// (PostgreSQL with the triggers of tokens alone).
type notPushed struct{ store.Permissions }

func (notPushed) PermissionsPushed() bool { return false }

// Where the store pushes changes to tokens but not to permissions, a
// handler with requirements bounds what it caches by the polled ttl (5s);
// one without keeps the pushed default (30s).
func TestRequireWithoutPushedPermissionsUsesThePolledTTL(t *testing.T) {
	f := newPermFixture(t)
	base := f.handler(t, nil) // a pushed store: the SQLite file's
	for _, c := range []struct {
		name string
		reqs []Requirement
		want time.Duration
	}{
		{"no requirement", nil, 30 * time.Second},
		{"require staff", []Requirement{{Staff: true}}, 5 * time.Second},
	} {
		h := &TokenAuth{store: base.store, logger: base.logger, Require: c.reqs}
		h.perms = &handlerPerms{perms: c.reqs != nil, permStore: notPushed{base.perms.permStore}}
		if err := h.provisionCache("polled-ttl-test " + c.name); err != nil {
			t.Fatal(err)
		}
		if got := h.cache.TTL(); got != c.want {
			t.Errorf("%s: ttl %v, want %v", c.name, got, c.want)
		}
		h.perms = nil
		h.Cleanup()
	}
}

// No permissions loaded meets no requirement (fails closed).
func TestNoPermissionsLoadedMeetNoRequirement(t *testing.T) {
	hp := &handlerPerms{reqs: []requirement{{staff: true, superuser: true}}}
	if hp.allow(nil) {
		t.Error("nil permissions allowed")
	}
	if !hp.allow(&flagsOnly[1]) || !hp.allow(&flagsOnly[2]) || hp.allow(&flagsOnly[0]) {
		t.Error("the flags' bits do not mean superuser (1) and staff (2)")
	}
}

// A request an old config still serves after a reload runs on a handler
// that has been cleaned up: it is answered as before (no nil state, no
// race under -race).
func TestAHandlerStillAnswersDuringItsCleanup(t *testing.T) {
	f := newPermFixture(t)
	h := f.handler(t, func(h *TokenAuth) {
		h.Require = []Requirement{{Staff: true}}
		h.Cache = &Cache{Off: true} // every request loads the permissions
	})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bad atomic.Value
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got := f.serve(t, h, "GET", "/", "staff"); got.code != 200 {
					bad.Store(got.String())
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	h.Cleanup()
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Errorf("a request during Cleanup got %v, want 200", v)
	}
}
