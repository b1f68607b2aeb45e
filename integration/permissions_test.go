package integration

// require and optional read_only against the real DRF: the views of
// django/tokenauth_site/urls.py under /perm/ carry DRF's permission
// classes (IsAdminUser, IsAuthenticatedOrReadOnly) and three of a
// project's own (is_superuser, membership of a group, user.has_perm), one
// of them with IsAdminUser beside it; Caddy's routes of the same paths
// carry the requirements that say the same. Every user kind, every
// method, answer for answer, on a Django db.sqlite3 and on PostgreSQL.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// permRoutes are the views and the requirements that say what their
// permission classes do.
var permRoutes = []struct {
	path, classes, options string
}{
	{"/perm/admin/", "IsAdminUser", "require staff"},
	{"/perm/superuser/", "is_superuser", "require superuser"},
	{"/perm/group/", "in editors or admins", "require group editors admins"},
	{"/perm/perm/", `has_perm("reports.view_report")`, "require perm reports.view_report"},
	{"/perm/both/", "has_perm, IsAdminUser", "require perm reports.view_report\n\t\t\trequire staff"},
	{"/perm/readonly/", "IsAuthenticatedOrReadOnly", "optional read_only"},
}

// permDjangoUser is a user setupperms makes.
type permDjangoUser struct {
	Username  string   `json:"username"`
	Active    bool     `json:"active"`
	Staff     bool     `json:"staff,omitempty"`
	Superuser bool     `json:"superuser,omitempty"`
	Groups    []string `json:"groups,omitempty"`
	Perms     []string `json:"perms,omitempty"`
}

// permSetup makes the groups and users through Django's ORM and returns
// each user's token.
func permSetup(t *testing.T, db djangoDB, groups map[string][]string, users []permDjangoUser) map[string]string {
	t.Helper()
	var made []struct {
		Username string `json:"username"`
		Token    string `json:"token"`
	}
	djangoCheck(t, db, "setupperms", map[string]any{"perms": []string{"reports.view_report", "reports.add_report"}, "groups": groups, "users": users}, &made)
	keys := make(map[string]string)
	for _, u := range made {
		keys[u.Username] = u.Token
	}
	return keys
}

// permRequest is one request of the matrix.
type permRequest struct {
	Method        string  `json:"method"`
	Path          string  `json:"path"`
	Authorization *string `json:"authorization"`
}

func TestRequirementsMatchDRF(t *testing.T) {
	djangoRequire(t)
	djangoEachStore(t, testRequirementsMatchDRF)
}

func testRequirementsMatchDRF(t *testing.T, kind string) {
	db := djangoNewDB(t, kind)
	keys := permSetup(t, db, map[string][]string{
		"editors":   nil,
		"admins":    nil,
		"reporters": {"reports.view_report"},
	}, []permDjangoUser{
		{Username: "staff", Active: true, Staff: true},
		{Username: "superuser", Active: true, Superuser: true},
		{Username: "editor", Active: true, Groups: []string{"editors"}},
		{Username: "admin_member", Active: true, Groups: []string{"admins"}},
		{Username: "via_group", Active: true, Groups: []string{"reporters"}},
		{Username: "direct", Active: true, Perms: []string{"reports.view_report"}},
		{Username: "other_perm", Active: true, Perms: []string{"reports.add_report"}},
		{Username: "staff_via_group", Active: true, Staff: true, Groups: []string{"reporters"}},
		{Username: "inactive", Active: false, Staff: true, Superuser: true, Groups: []string{"editors"}, Perms: []string{"reports.view_report"}},
		{Username: "plain", Active: true},
	})

	var site strings.Builder
	for _, r := range permRoutes {
		fmt.Fprintf(&site, "\thandle %s* {\n\t\ttoken_auth {\n\t\t\t%s\n\t\t\t%s\n\t\t}\n\t\trespond \"user={http.auth.user.username} id={http.auth.user.id}\"\n\t}\n",
			r.path, db.storeLine(), r.options)
	}
	tc := caddytest.NewTester(t)
	tc.InitServer(globalOptions+"http://localhost:9080 {\n"+site.String()+"}\n", "caddyfile")
	if db.kind == "postgres" {
		t.Cleanup(func() { _ = loadConfig(globalOptions + "http://localhost:9080 {\n\trespond ok\n}\n") })
	}
	if t.Failed() {
		t.FailNow()
	}

	credentials := []struct {
		name string
		auth *string
	}{{"no credentials", nil}, {"bad token", djangoPtr("Token " + strings.Repeat("0", 40))}}
	for _, u := range []string{"staff", "superuser", "editor", "admin_member", "via_group", "direct", "other_perm", "staff_via_group", "inactive", "plain"} {
		credentials = append(credentials, struct {
			name string
			auth *string
		}{u, djangoPtr("Token " + keys[u])})
	}
	methods := []string{"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"}
	var reqs []permRequest
	var names []string
	for _, route := range permRoutes {
		for _, c := range credentials {
			for _, m := range methods {
				reqs = append(reqs, permRequest{Method: m, Path: route.path, Authorization: c.auth})
				names = append(names, fmt.Sprintf("%s (%s) %s %s", route.path, route.classes, c.name, m))
			}
		}
	}
	var drf []djangoResponse
	djangoCheck(t, db, "permissions", map[string]any{"requests": reqs}, &drf)
	if len(drf) != len(reqs) {
		t.Fatalf("%d answers from DRF for %d requests", len(drf), len(reqs))
	}
	answers := map[string]int{}
	for i, r := range reqs {
		want := drf[i]
		got := permRawRequest(t, r)
		if want.Status == http.StatusOK {
			// Caddy's site echoes the user where DRF's view returns JSON
			// (or, for OPTIONS, its metadata): the status is the answer.
			want.Body, want.ContentType, got.Body, got.ContentType = nil, nil, nil, nil
		}
		answers[fmt.Sprint(want.Status)]++
		if got.String() != want.String() {
			t.Errorf("%s:\nCaddy %v\nDRF   %v", names[i], got, want)
		}
	}
	t.Logf("%d requests (%d routes × %d credentials × %d methods), DRF's answers by status: %v",
		len(reqs), len(permRoutes), len(credentials), len(methods), answers)
}

// permRawRequest sends one request of the matrix to the Caddy test site,
// as raw bytes.
func permRawRequest(t *testing.T, r permRequest) djangoResponse {
	t.Helper()
	conn, err := net.DialTimeout("tcp", "127.0.0.1:9080", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: localhost:9080\r\n", r.Method, r.Path)
	if r.Authorization != nil {
		b.WriteString("Authorization: " + *r.Authorization + "\r\n")
	}
	if r.Method != "GET" && r.Method != "HEAD" && r.Method != "OPTIONS" {
		b.WriteString("Content-Length: 0\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: r.Method})
	if err != nil {
		t.Fatalf("reading Caddy's response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	got := djangoResponse{Status: resp.StatusCode, Body: body}
	if v, ok := resp.Header["Www-Authenticate"]; ok {
		s := strings.Join(v, ", ")
		got.WWWAuthenticate = &s
	}
	if v, ok := resp.Header["Content-Type"]; ok {
		s := strings.Join(v, ", ")
		got.ContentType = &s
	}
	return got
}

// The users and groups `caddy token` makes are Django's: DRF's views see
// the flags adduser sets and the groups `caddy token groups` makes.
func TestCaddyTokenGroupsWorkInDjango(t *testing.T) {
	djangoRequire(t)
	djangoEachStore(t, func(t *testing.T, kind string) {
		db := djangoNewDB(t, kind)
		storeFlag := db.storeFlag()
		keys := map[string]string{}
		for _, u := range []struct {
			name  string
			flags []string
		}{{"ops", []string{"--staff"}}, {"root", []string{"--superuser"}}, {"ed", nil}} {
			out := djangoTokenCLI(t, "pw-"+u.name+"\n", append([]string{"adduser", u.name, "--password-stdin", storeFlag}, u.flags...)...)
			keys[u.name] = djangoGenerated(t, out, u.name)
		}
		if out := djangoTokenCLI(t, "", "groups", "ed", "--add", "editors", storeFlag); out != "Created group editors\nUser ed is in groups: editors\n" {
			t.Errorf("groups ed --add editors: %q", out)
		}
		var reqs []permRequest
		for _, path := range []string{"/perm/admin/", "/perm/superuser/", "/perm/group/", "/perm/perm/"} {
			for _, u := range []string{"ops", "root", "ed"} {
				reqs = append(reqs, permRequest{Method: "GET", Path: path, Authorization: djangoPtr("Token " + keys[u])})
			}
		}
		var drf []djangoResponse
		djangoCheck(t, db, "permissions", map[string]any{"requests": reqs}, &drf)
		want := []int{200, 403, 403, 403, 200, 403, 403, 403, 200, 403, 200, 403}
		for i, r := range drf {
			if r.Status != want[i] {
				t.Errorf("DRF %s as %s: %d %s, want %d", reqs[i].Path, *reqs[i].Authorization, r.Status, r.Body, want[i])
			}
		}
		// The group as Django sees it.
		var members []struct{ Username string }
		raw := djangoRun(t, db, nil, "-c", `
import os, sys, json
sys.path.insert(0, ".")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenauth_site.settings")
import django
django.setup()
from django.contrib.auth.models import Group
print(json.dumps([{"Username": u.username} for u in Group.objects.get(name="editors").user_set.all()]))
`)
		if err := json.Unmarshal(raw, &members); err != nil || len(members) != 1 || members[0].Username != "ed" {
			t.Errorf("editors in Django: %s (%v), want ed", raw, err)
		}
	})
}
