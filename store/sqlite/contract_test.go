package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenauth/caddy-tokenauth/store"
	"github.com/tokenauth/caddy-tokenauth/store/storetest"
)

// Django's tables as `manage.py migrate` leaves them in sqlite_master
// (Django 3.2–5.2): auth_user, authtoken_token and those of groups and
// permissions, written out here rather than taken from the store's own
// DDL, so that a change to that DDL shows.
const djangoSQLiteSchema = `index auth_group_permissions_group_id_b120cbf9 on auth_group_permissions: CREATE INDEX "auth_group_permissions_group_id_b120cbf9" ON "auth_group_permissions" ("group_id")
index auth_group_permissions_group_id_permission_id_0cd325b0_uniq on auth_group_permissions: CREATE UNIQUE INDEX "auth_group_permissions_group_id_permission_id_0cd325b0_uniq" ON "auth_group_permissions" ("group_id", "permission_id")
index auth_group_permissions_permission_id_84c5c92e on auth_group_permissions: CREATE INDEX "auth_group_permissions_permission_id_84c5c92e" ON "auth_group_permissions" ("permission_id")
index auth_permission_content_type_id_2f476e4b on auth_permission: CREATE INDEX "auth_permission_content_type_id_2f476e4b" ON "auth_permission" ("content_type_id")
index auth_permission_content_type_id_codename_01ab375a_uniq on auth_permission: CREATE UNIQUE INDEX "auth_permission_content_type_id_codename_01ab375a_uniq" ON "auth_permission" ("content_type_id", "codename")
index auth_user_groups_group_id_97559544 on auth_user_groups: CREATE INDEX "auth_user_groups_group_id_97559544" ON "auth_user_groups" ("group_id")
index auth_user_groups_user_id_6a12ed8b on auth_user_groups: CREATE INDEX "auth_user_groups_user_id_6a12ed8b" ON "auth_user_groups" ("user_id")
index auth_user_groups_user_id_group_id_94350c0c_uniq on auth_user_groups: CREATE UNIQUE INDEX "auth_user_groups_user_id_group_id_94350c0c_uniq" ON "auth_user_groups" ("user_id", "group_id")
index auth_user_user_permissions_permission_id_1fbb5f2c on auth_user_user_permissions: CREATE INDEX "auth_user_user_permissions_permission_id_1fbb5f2c" ON "auth_user_user_permissions" ("permission_id")
index auth_user_user_permissions_user_id_a95ead1b on auth_user_user_permissions: CREATE INDEX "auth_user_user_permissions_user_id_a95ead1b" ON "auth_user_user_permissions" ("user_id")
index auth_user_user_permissions_user_id_permission_id_14a6b632_uniq on auth_user_user_permissions: CREATE UNIQUE INDEX "auth_user_user_permissions_user_id_permission_id_14a6b632_uniq" ON "auth_user_user_permissions" ("user_id", "permission_id")
index django_content_type_app_label_model_76bd3d3b_uniq on django_content_type: CREATE UNIQUE INDEX "django_content_type_app_label_model_76bd3d3b_uniq" ON "django_content_type" ("app_label", "model")
index sqlite_autoindex_auth_group_1 on auth_group: NULL
index sqlite_autoindex_auth_user_1 on auth_user: NULL
index sqlite_autoindex_authtoken_token_1 on authtoken_token: NULL
index sqlite_autoindex_authtoken_token_2 on authtoken_token: NULL
table auth_group on auth_group: CREATE TABLE "auth_group" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(150) NOT NULL UNIQUE)
table auth_group_permissions on auth_group_permissions: CREATE TABLE "auth_group_permissions" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "group_id" integer NOT NULL REFERENCES "auth_group" ("id") DEFERRABLE INITIALLY DEFERRED, "permission_id" integer NOT NULL REFERENCES "auth_permission" ("id") DEFERRABLE INITIALLY DEFERRED)
table auth_permission on auth_permission: CREATE TABLE "auth_permission" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "content_type_id" integer NOT NULL REFERENCES "django_content_type" ("id") DEFERRABLE INITIALLY DEFERRED, "codename" varchar(100) NOT NULL, "name" varchar(255) NOT NULL)
table auth_user on auth_user: CREATE TABLE "auth_user" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "password" varchar(128) NOT NULL, "last_login" datetime NULL, "is_superuser" bool NOT NULL, "username" varchar(150) NOT NULL UNIQUE, "last_name" varchar(150) NOT NULL, "email" varchar(254) NOT NULL, "is_staff" bool NOT NULL, "is_active" bool NOT NULL, "date_joined" datetime NOT NULL, "first_name" varchar(150) NOT NULL)
table auth_user_groups on auth_user_groups: CREATE TABLE "auth_user_groups" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED, "group_id" integer NOT NULL REFERENCES "auth_group" ("id") DEFERRABLE INITIALLY DEFERRED)
table auth_user_user_permissions on auth_user_user_permissions: CREATE TABLE "auth_user_user_permissions" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED, "permission_id" integer NOT NULL REFERENCES "auth_permission" ("id") DEFERRABLE INITIALLY DEFERRED)
table authtoken_token on authtoken_token: CREATE TABLE "authtoken_token" ("key" varchar(40) NOT NULL PRIMARY KEY, "created" datetime NOT NULL, "user_id" integer NOT NULL UNIQUE REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)
table django_content_type on django_content_type: CREATE TABLE "django_content_type" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "app_label" varchar(100) NOT NULL, "model" varchar(100) NOT NULL)
`

// djangoTables are the tables the store makes (knox's apart).
var djangoTables = []string{"auth_user", "authtoken_token", "django_content_type", "auth_permission", "auth_group",
	"auth_group_permissions", "auth_user_groups", "auth_user_user_permissions"}

func TestContract(t *testing.T) {
	storetest.Run(t, contractFixture)
}

func TestKnoxContract(t *testing.T) {
	storetest.RunKnox(t, contractFixture)
}

// contractFixture is a store on a fresh file made with create, and a
// read-write handle of the test's own on the same file.
func contractFixture(t *testing.T) *storetest.Fixture {
	s, path := openStore(t)
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	query := func(t *testing.T, q string, args ...any) *sql.Row {
		t.Helper()
		return raw.QueryRow(q, args...)
	}
	return &storetest.Fixture{
		Store:      s,
		Schema:     func(t *testing.T) string { return sqliteSchema(t, raw, djangoTables...) },
		WantSchema: djangoSQLiteSchema,
		KnoxSchema: func(t *testing.T) string { return sqliteSchema(t, raw, "knox_authtoken") },
		// As real knox made it (../../testdata/knox/knox.sqlite3).
		WantKnoxSchema: knoxFixtureSchema(t),
		DropKnoxTable: func(t *testing.T) {
			t.Helper()
			sqlExecOn(t, raw, `DROP TABLE "knox_authtoken"`)
		},
		Dump: func(t *testing.T) string { return sqliteDump(t, raw, path) },
		DropTables: func(t *testing.T) {
			t.Helper()
			sqlExecOn(t, raw, `DROP TABLE "authtoken_token"`, `DROP TABLE "auth_user_groups"`, `DROP TABLE "auth_user_user_permissions"`,
				`DROP TABLE "auth_group_permissions"`, `DROP TABLE "auth_group"`, `DROP TABLE "auth_permission"`,
				`DROP TABLE "django_content_type"`, `DROP TABLE "auth_user"`)
		},
		Exec: func(t *testing.T, stmt string) {
			t.Helper()
			sqlExecOn(t, raw, stmt)
		},
		UserID: func(t *testing.T, username string) string {
			t.Helper()
			var id string
			if err := query(t, `SELECT CAST("id" AS TEXT) FROM "auth_user" WHERE "username" = ?`, username).Scan(&id); err != nil {
				t.Fatal(err)
			}
			return id
		},
		UserRow: func(t *testing.T, username string) map[string]string {
			t.Helper()
			var password, lastLogin, first, last, email, joined string
			var superuser, staff, active bool
			err := query(t, `SELECT "password", coalesce("last_login", 'NULL'), "is_superuser", "first_name", "last_name", "email", "is_staff", "is_active", CAST("date_joined" AS TEXT) FROM "auth_user" WHERE "username" = ?`, username).
				Scan(&password, &lastLogin, &superuser, &first, &last, &email, &staff, &active, &joined)
			if err != nil {
				t.Fatal(err)
			}
			// Django's SQLite backend writes "YYYY-MM-DD HH:MM:SS.ffffff", in UTC.
			at, err := time.Parse(djangoTimeLayout, joined)
			if err != nil {
				t.Fatalf("date_joined %q is not as Django writes it: %v", joined, err)
			}
			return map[string]string{
				"password": password, "last_login": lastLogin, "is_superuser": fmt.Sprint(superuser),
				"first_name": first, "last_name": last, "email": email,
				"is_staff": fmt.Sprint(staff), "is_active": fmt.Sprint(active), "date_joined": at.Format(time.RFC3339Nano),
			}
		},
		TokenRow: func(t *testing.T, username string) (string, bool) {
			t.Helper()
			var key, created, userID string
			err := query(t, `SELECT t."key", CAST(t."created" AS TEXT), CAST(t."user_id" AS TEXT) FROM "authtoken_token" t JOIN "auth_user" u ON u."id" = t."user_id" WHERE u."username" = ?`, username).
				Scan(&key, &created, &userID)
			if errors.Is(err, sql.ErrNoRows) {
				return "", false
			}
			if err != nil {
				t.Fatal(err)
			}
			return key + " " + created + " " + userID, true
		},
		SetGenerateKey: func(t *testing.T, gen func() string) {
			generateKey = gen
			t.Cleanup(func() { generateKey = store.GenerateKey })
		},
		Stopped: func(t *testing.T) (storetest.Store, string) {
			t.Helper()
			s, path := openStore(t)
			ctx := context.Background()
			if err := s.AddUser(ctx, store.NewUser{Username: "alice", Password: "!", Active: true}); err != nil {
				t.Fatal(err)
			}
			key, err := s.TokenFor(ctx, "alice", false)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.MigrateKnox(ctx); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
			// The store notices within a poll interval.
			for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				_, err := s.Lookup(ctx, key)
				if errors.Is(err, store.ErrUnavailable) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Lookup 2s after the file's removal: %v, want ErrUnavailable", err)
				}
			}
			return s, key
		},
	}
}

// sqliteSchema describes the tables of db as sqlite_master holds them:
// each table and index, with its DDL.
func sqliteSchema(t *testing.T, db *sql.DB, tables ...string) string {
	t.Helper()
	rows, err := db.Query(`SELECT "type", "name", "tbl_name", coalesce("sql", 'NULL') FROM sqlite_master WHERE "tbl_name" IN (SELECT "value" FROM json_each(?)) ORDER BY "type", "name"`, jsonList(tables))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var typ, name, table, ddl string
		if err := rows.Scan(&typ, &name, &table, &ddl); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s on %s: %s\n", typ, name, table, ddl)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// jsonList is strings as a JSON array.
func jsonList(ss []string) string {
	b, _ := json.Marshal(ss)
	return string(b)
}

// knoxFixture is the database real knox made (../../testdata/knox/knox.sqlite3,
// from the project's knox fixture), copied to a file of the test's own.
func knoxFixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../testdata/knox/knox.sqlite3")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "knox.sqlite3")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// knoxFixtureSchema is knox_authtoken as real knox's migrations made it.
func knoxFixtureSchema(t *testing.T) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+knoxFixture(t)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return sqliteSchema(t, db, "knox_authtoken")
}

// sqliteDump is every value of every table of db, and the bytes of the
// file at path and of its -wal.
func sqliteDump(t *testing.T, db *sql.DB, path string) string {
	t.Helper()
	var b strings.Builder
	for _, p := range []string{path, path + "-wal"} {
		raw, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		b.Write(raw)
	}
	rows, err := db.Query(`SELECT "name" FROM sqlite_master WHERE "type" = 'table'`)
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
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
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
			for _, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, "%v\n", v)
			}
		}
		rows.Close()
	}
	return b.String()
}

// djangoTimeLayout reads what djangoText writes.
const djangoTimeLayout = "2006-01-02 15:04:05.999999"

// sqlExecOn runs statements on db.
func sqlExecOn(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// The store contract SQLite meets, every part of it (Admin includes
// Logins, KnoxAdmin Knox).
var _ interface {
	store.Store
	store.Admin
	store.KnoxAdmin
	store.Watcher
	store.Permissions
	store.Groups
} = (*SQLite)(nil)
