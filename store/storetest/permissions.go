package storetest

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// runPermissions runs the cases of store.Permissions and store.Groups.
func runPermissions(t *testing.T, open func(*testing.T) *Fixture) {
	t.Run("UserPermissionsIsModelBackends", func(t *testing.T) { testUserPermissions(t, open) })
	t.Run("UserPermissionsOfAnUnknownUser", func(t *testing.T) { testUserPermissionsUnknown(t, open) })
	t.Run("EditGroupsIsGetOrCreateAddRemove", func(t *testing.T) { testEditGroups(t, open) })
	t.Run("AddUserWritesStaffAndSuperuser", func(t *testing.T) { testAddUserFlags(t, open) })
}

// permissionRows gives the database, behind the store's back, three content
// types and their permissions as Django's migrate makes them: reports.report
// (view_report, add_report), blog.post, whose codename view_report repeats
// reports' under another app label, and reports.summary, which has a
// view_report of its own: reports.view_report names two permissions.
func permissionRows(t *testing.T, f *Fixture) {
	t.Helper()
	f.Exec(t, `INSERT INTO "django_content_type" ("app_label", "model") VALUES ('reports', 'report'), ('blog', 'post'), ('reports', 'summary')`)
	f.Exec(t, `INSERT INTO "auth_permission" ("name", "content_type_id", "codename") SELECT 'Can view summary', "id", 'view_report' FROM "django_content_type" WHERE "model" = 'summary'`)
	f.Exec(t, `INSERT INTO "auth_permission" ("name", "content_type_id", "codename") SELECT 'Can view report', "id", 'view_report' FROM "django_content_type" WHERE "model" = 'report'`)
	f.Exec(t, `INSERT INTO "auth_permission" ("name", "content_type_id", "codename") SELECT 'Can add report', "id", 'add_report' FROM "django_content_type" WHERE "model" = 'report'`)
	f.Exec(t, `INSERT INTO "auth_permission" ("name", "content_type_id", "codename") SELECT 'Can view post', "id", 'view_report' FROM "django_content_type" WHERE "app_label" = 'blog'`)
}

// grantGroup gives group the permission app.codename, behind the store's
// back.
func grantGroup(t *testing.T, f *Fixture, group, app, codename string) {
	t.Helper()
	f.Exec(t, `INSERT INTO "auth_group_permissions" ("group_id", "permission_id") SELECT "auth_group"."id", "auth_permission"."id" FROM "auth_group", "auth_permission" INNER JOIN "django_content_type" ON ("auth_permission"."content_type_id" = "django_content_type"."id") WHERE "auth_group"."name" = '`+group+`' AND "django_content_type"."app_label" = '`+app+`' AND "auth_permission"."codename" = '`+codename+`'`)
}

// grantUser gives the user named username the permission app.codename,
// behind the store's back.
func grantUser(t *testing.T, f *Fixture, username, app, codename string) {
	t.Helper()
	f.Exec(t, `INSERT INTO "auth_user_user_permissions" ("user_id", "permission_id") SELECT "auth_user"."id", "auth_permission"."id" FROM "auth_user", "auth_permission" INNER JOIN "django_content_type" ON ("auth_permission"."content_type_id" = "django_content_type"."id") WHERE "auth_user"."username" = '`+username+`' AND "django_content_type"."app_label" = '`+app+`' AND "auth_permission"."codename" = '`+codename+`'`)
}

// editGroups is EditGroups that must succeed.
func editGroups(t *testing.T, s Store, username string, add, remove []string) (created, groups []string) {
	t.Helper()
	created, groups, err := s.EditGroups(context.Background(), username, add, remove)
	if err != nil {
		t.Fatalf("EditGroups(%s, +%q, -%q): %v", username, add, remove, err)
	}
	return created, groups
}

func testUserPermissions(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s, ctx := f.Store, context.Background()
	for _, u := range []store.NewUser{
		{Username: "plain", Active: true},
		{Username: "staff", Active: true, Staff: true},
		{Username: "super", Active: true, Superuser: true},
		{Username: "editor", Active: true},
		{Username: "viaGroup", Active: true},
		{Username: "direct", Active: true},
		{Username: "both", Active: true, Staff: true},
		{Username: "sleepy", Active: false},
		{Username: "names", Active: true},
	} {
		u.Password = "!unusable"
		if err := s.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	permissionRows(t, f)
	editGroups(t, s, "editor", []string{"editors"}, nil)
	editGroups(t, s, "viaGroup", []string{"reporters"}, nil)
	editGroups(t, s, "both", []string{"reporters", "bloggers"}, nil)
	editGroups(t, s, "sleepy", []string{"editors"}, nil)
	editGroups(t, s, "names", []string{"b,c", "Zeta", "alpha", "élan"}, nil)
	grantGroup(t, f, "reporters", "reports", "view_report")
	grantGroup(t, f, "bloggers", "blog", "view_report")
	grantGroup(t, f, "bloggers", "reports", "view_report")
	grantUser(t, f, "direct", "reports", "view_report")
	grantUser(t, f, "direct", "reports", "add_report")
	grantUser(t, f, "both", "reports", "view_report")
	grantUser(t, f, "sleepy", "reports", "add_report")

	tests := []struct {
		username string
		want     store.UserPermissions
	}{
		{"plain", store.UserPermissions{}},
		{"staff", store.UserPermissions{Staff: true}},
		// A superuser's rows: that it has every permission is has_perm's.
		{"super", store.UserPermissions{Superuser: true}},
		{"editor", store.UserPermissions{Groups: []string{"editors"}}},
		{"viaGroup", store.UserPermissions{Groups: []string{"reporters"}, Perms: []string{"reports.view_report"}}},
		{"direct", store.UserPermissions{Perms: []string{"reports.add_report", "reports.view_report"}}},
		// Its own and two groups' reports.view_report (two permissions of
		// that name, reports.report's and reports.summary's) count once;
		// blog's view_report is another permission.
		{"both", store.UserPermissions{Staff: true, Groups: []string{"bloggers", "reporters"}, Perms: []string{"blog.view_report", "reports.view_report"}}},
		// The rows of an inactive user, as stored: that it has no
		// permission is has_perm's.
		{"sleepy", store.UserPermissions{Groups: []string{"editors"}, Perms: []string{"reports.add_report"}}},
		// Bytewise order, names as they are.
		{"names", store.UserPermissions{Groups: []string{"Zeta", "alpha", "b,c", "élan"}}},
	}
	for _, tt := range tests {
		t.Run(tt.username, func(t *testing.T) {
			got, err := s.UserPermissions(ctx, f.UserID(t, tt.username))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("UserPermissions = %+v, want %+v", got, tt.want)
			}
		})
	}
	t.Run("a change behind the store's back shows at once", func(t *testing.T) {
		id := f.UserID(t, "viaGroup")
		f.Exec(t, `DELETE FROM "auth_group_permissions"`)
		f.Exec(t, `UPDATE "auth_user" SET "is_staff" = true WHERE "username" = 'viaGroup'`)
		got, err := s.UserPermissions(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := (store.UserPermissions{Staff: true, Groups: []string{"reporters"}}); !reflect.DeepEqual(got, want) {
			t.Errorf("UserPermissions = %+v, want %+v", got, want)
		}
	})
}

func testUserPermissionsUnknown(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s, ctx := f.Store, context.Background()
	for _, id := range []string{"987654", "0", "-1", "abc", ""} {
		_, err := s.UserPermissions(ctx, id)
		wantErr(t, "UserPermissions("+id+")", err, store.ErrNoUser)
	}
}

func testEditGroups(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s, ctx := f.Store, context.Background()
	addUser(t, s, "john", true)
	addUser(t, s, "amy", true)

	created, groups := editGroups(t, s, "john", nil, nil)
	if created != nil || groups != nil {
		t.Errorf("no change: created %q, groups %q, want none", created, groups)
	}
	created, groups = editGroups(t, s, "john", []string{"editors", "admins", "editors"}, nil)
	if want := []string{"editors", "admins"}; !reflect.DeepEqual(created, want) {
		t.Errorf("created %q, want %q (in the order given, once)", created, want)
	}
	if want := []string{"admins", "editors"}; !reflect.DeepEqual(groups, want) {
		t.Errorf("groups %q, want %q", groups, want)
	}
	created, groups = editGroups(t, s, "amy", []string{"editors", "ops"}, []string{"nosuchgroup", "admins"})
	if want := []string{"ops"}; !reflect.DeepEqual(created, want) {
		t.Errorf("amy: created %q, want %q (editors exists)", created, want)
	}
	if want := []string{"editors", "ops"}; !reflect.DeepEqual(groups, want) {
		t.Errorf("amy: groups %q, want %q", groups, want)
	}
	created, groups = editGroups(t, s, "john", []string{"ops"}, []string{"editors", "ops"})
	if created != nil || !reflect.DeepEqual(groups, []string{"admins"}) {
		t.Errorf("john: created %q, groups %q; want none and [admins] (remove comes after add)", created, groups)
	}
	if p, err := s.UserPermissions(ctx, f.UserID(t, "amy")); err != nil || !reflect.DeepEqual(p.Groups, []string{"editors", "ops"}) {
		t.Errorf("amy's UserPermissions = %+v, %v; want groups [editors ops]", p, err)
	}

	t.Run("unknown user changes nothing", func(t *testing.T) {
		_, _, err := s.EditGroups(ctx, "nobody", []string{"fresh"}, nil)
		wantErr(t, "EditGroups", err, store.ErrNoUser)
		if created, _ := editGroups(t, s, "amy", []string{"fresh"}, []string{"fresh"}); !reflect.DeepEqual(created, []string{"fresh"}) {
			t.Errorf("group fresh existed after a failed edit (created %q)", created)
		}
	})
	t.Run("username differing in case is another user", func(t *testing.T) {
		_, _, err := s.EditGroups(ctx, "John", []string{"x"}, nil)
		wantErr(t, "EditGroups", err, store.ErrNoUser)
	})
}

func testAddUserFlags(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s, ctx := f.Store, context.Background()
	for _, u := range []store.NewUser{
		{Username: "staff", Password: "!", Active: true, Staff: true},
		{Username: "super", Password: "!", Active: true, Superuser: true},
		{Username: "both", Password: "!", Active: false, Staff: true, Superuser: true},
	} {
		if err := s.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		row := f.UserRow(t, u.Username)
		got := []string{row["is_staff"], row["is_superuser"], row["is_active"]}
		want := []string{bools(u.Staff), bools(u.Superuser), bools(u.Active)}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: is_staff, is_superuser, is_active = %q, want %q", u.Username, got, want)
		}
		p, err := s.UserPermissions(ctx, f.UserID(t, u.Username))
		if err != nil || p.Staff != u.Staff || p.Superuser != u.Superuser {
			t.Errorf("%s: UserPermissions = %+v, %v", u.Username, p, err)
		}
	}
}

func bools(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
