package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenauth/caddy-tokenauth/store"
	"github.com/tokenauth/caddy-tokenauth/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, contractFixture)
}

func TestKnoxContract(t *testing.T) {
	storetest.RunKnox(t, contractFixture)
}

// djangoTables are the tables of Django the store makes (knox's apart).
var djangoTables = append([]string{"auth_user", "authtoken_token"}, permissionTables...)

// contractFixture is a store on a fresh schema made with create, and a
// connection of the test's own to the same database.
func contractFixture(t *testing.T) *storetest.Fixture {
	s := newStore(t)
	conn := admin(t, testDSN(t))
	ctx := context.Background()
	return &storetest.Fixture{
		Store:          s,
		Schema:         func(t *testing.T) string { return pgSchema(t, conn, s.Schema, djangoTables...) },
		WantSchema:     djangoPGSchema(s.Schema),
		KnoxSchema:     func(t *testing.T) string { return pgSchema(t, conn, s.Schema, "knox_authtoken") },
		WantKnoxSchema: knoxPGSchema(s.Schema),
		DropKnoxTable: func(t *testing.T) {
			t.Helper()
			if _, err := conn.Exec(ctx, `DROP TABLE `+s.db.knoxToken); err != nil {
				t.Fatal(err)
			}
		},
		Dump: func(t *testing.T) string { return pgDump(t, conn, s.Schema) },
		DropTables: func(t *testing.T) {
			t.Helper()
			tables := append([]string{s.db.authToken, s.db.authUser}, s.db.perms.tables...)
			if _, err := conn.Exec(ctx, `DROP TABLE `+strings.Join(tables, ", ")); err != nil {
				t.Fatal(err)
			}
		},
		Exec: func(t *testing.T, stmt string) {
			t.Helper()
			if _, err := conn.Exec(ctx, `SET search_path TO "`+s.Schema+`"`); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		},
		UserID: func(t *testing.T, username string) string {
			t.Helper()
			var id string
			if err := conn.QueryRow(ctx, `SELECT id::text FROM `+s.db.authUser+` WHERE username = $1`, username).Scan(&id); err != nil {
				t.Fatal(err)
			}
			return id
		},
		UserRow: func(t *testing.T, username string) map[string]string {
			t.Helper()
			var (
				password, first, last, email string
				superuser, staff, active     bool
				lastLogin                    *time.Time
				joined                       time.Time
			)
			err := conn.QueryRow(ctx, `SELECT password, last_login, is_superuser, first_name, last_name, email, is_staff, is_active, date_joined FROM `+s.db.authUser+` WHERE username = $1`, username).
				Scan(&password, &lastLogin, &superuser, &first, &last, &email, &staff, &active, &joined)
			if err != nil {
				t.Fatal(err)
			}
			ll := "NULL"
			if lastLogin != nil {
				ll = lastLogin.Format(time.RFC3339Nano)
			}
			return map[string]string{
				"password": password, "last_login": ll, "is_superuser": fmt.Sprint(superuser),
				"first_name": first, "last_name": last, "email": email,
				"is_staff": fmt.Sprint(staff), "is_active": fmt.Sprint(active), "date_joined": joined.Format(time.RFC3339Nano),
			}
		},
		TokenRow: func(t *testing.T, username string) (string, bool) {
			t.Helper()
			var key string
			var created time.Time
			var userID int64
			err := conn.QueryRow(ctx, `SELECT t."key", t."created", t."user_id" FROM `+s.db.authToken+` t JOIN `+s.db.authUser+` u ON u."id" = t."user_id" WHERE u."username" = $1`, username).
				Scan(&key, &created, &userID)
			if errors.Is(err, pgx.ErrNoRows) {
				return "", false
			}
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("%s %s %d", key, created.Format(time.RFC3339Nano), userID), true
		},
		SetGenerateKey: func(t *testing.T, gen func() string) {
			generateKey = gen
			t.Cleanup(func() { generateKey = store.GenerateKey })
		},
		Stopped: func(t *testing.T) (storetest.Store, string) {
			t.Helper()
			cluster := startPrivateCluster(t)
			s, err := load(t, map[string]any{"dsn": cluster.dsn, "schema": freshSchema(t, cluster.dsn), "create": true, "query_timeout": "1s"})
			if err != nil {
				t.Fatal(err)
			}
			addUser(t, s, "alice", true)
			key := createToken(t, s, "alice")
			if err := s.MigrateKnox(ctx); err != nil {
				t.Fatal(err)
			}
			cluster.stop(t)
			return s, key
		},
	}
}

// What `pg_dump` shows of the tables Django 4.2 and 5.2 make
// (reference/drf-behaviour.md §2.7, §3.1): auth_user, authtoken_token and
// those of groups and permissions, in schema.
func djangoPGSchema(schema string) string {
	return `columns:
auth_group.id integer NOT NULL identity BY DEFAULT
auth_group.name character varying(150) NOT NULL
auth_group_permissions.id integer NOT NULL identity BY DEFAULT
auth_group_permissions.group_id integer NOT NULL
auth_group_permissions.permission_id integer NOT NULL
auth_permission.id integer NOT NULL identity BY DEFAULT
auth_permission.name character varying(255) NOT NULL
auth_permission.content_type_id integer NOT NULL
auth_permission.codename character varying(100) NOT NULL
auth_user.id integer NOT NULL identity BY DEFAULT
auth_user.password character varying(128) NOT NULL
auth_user.last_login timestamp with time zone NULL
auth_user.is_superuser boolean NOT NULL
auth_user.username character varying(150) NOT NULL
auth_user.first_name character varying(150) NOT NULL
auth_user.last_name character varying(150) NOT NULL
auth_user.email character varying(254) NOT NULL
auth_user.is_staff boolean NOT NULL
auth_user.is_active boolean NOT NULL
auth_user.date_joined timestamp with time zone NOT NULL
auth_user_groups.id integer NOT NULL identity BY DEFAULT
auth_user_groups.user_id integer NOT NULL
auth_user_groups.group_id integer NOT NULL
auth_user_user_permissions.id integer NOT NULL identity BY DEFAULT
auth_user_user_permissions.user_id integer NOT NULL
auth_user_user_permissions.permission_id integer NOT NULL
authtoken_token.key character varying(40) NOT NULL
authtoken_token.created timestamp with time zone NOT NULL
authtoken_token.user_id integer NOT NULL
django_content_type.id integer NOT NULL identity BY DEFAULT
django_content_type.app_label character varying(100) NOT NULL
django_content_type.model character varying(100) NOT NULL
indexes:
auth_group_name_a6ea08ec_like: CREATE INDEX auth_group_name_a6ea08ec_like ON USING btree (name varchar_pattern_ops)
auth_group_name_key: CREATE UNIQUE INDEX auth_group_name_key ON USING btree (name)
auth_group_permissions_group_id_b120cbf9: CREATE INDEX auth_group_permissions_group_id_b120cbf9 ON USING btree (group_id)
auth_group_permissions_group_id_permission_id_0cd325b0_uniq: CREATE UNIQUE INDEX auth_group_permissions_group_id_permission_id_0cd325b0_uniq ON USING btree (group_id, permission_id)
auth_group_permissions_permission_id_84c5c92e: CREATE INDEX auth_group_permissions_permission_id_84c5c92e ON USING btree (permission_id)
auth_group_permissions_pkey: CREATE UNIQUE INDEX auth_group_permissions_pkey ON USING btree (id)
auth_group_pkey: CREATE UNIQUE INDEX auth_group_pkey ON USING btree (id)
auth_permission_content_type_id_2f476e4b: CREATE INDEX auth_permission_content_type_id_2f476e4b ON USING btree (content_type_id)
auth_permission_content_type_id_codename_01ab375a_uniq: CREATE UNIQUE INDEX auth_permission_content_type_id_codename_01ab375a_uniq ON USING btree (content_type_id, codename)
auth_permission_pkey: CREATE UNIQUE INDEX auth_permission_pkey ON USING btree (id)
auth_user_groups_group_id_97559544: CREATE INDEX auth_user_groups_group_id_97559544 ON USING btree (group_id)
auth_user_groups_pkey: CREATE UNIQUE INDEX auth_user_groups_pkey ON USING btree (id)
auth_user_groups_user_id_6a12ed8b: CREATE INDEX auth_user_groups_user_id_6a12ed8b ON USING btree (user_id)
auth_user_groups_user_id_group_id_94350c0c_uniq: CREATE UNIQUE INDEX auth_user_groups_user_id_group_id_94350c0c_uniq ON USING btree (user_id, group_id)
auth_user_pkey: CREATE UNIQUE INDEX auth_user_pkey ON USING btree (id)
auth_user_user_permissions_permission_id_1fbb5f2c: CREATE INDEX auth_user_user_permissions_permission_id_1fbb5f2c ON USING btree (permission_id)
auth_user_user_permissions_pkey: CREATE UNIQUE INDEX auth_user_user_permissions_pkey ON USING btree (id)
auth_user_user_permissions_user_id_a95ead1b: CREATE INDEX auth_user_user_permissions_user_id_a95ead1b ON USING btree (user_id)
auth_user_user_permissions_user_id_permission_id_14a6b632_uniq: CREATE UNIQUE INDEX auth_user_user_permissions_user_id_permission_id_14a6b632_uniq ON USING btree (user_id, permission_id)
auth_user_username_6821ab7c_like: CREATE INDEX auth_user_username_6821ab7c_like ON USING btree (username varchar_pattern_ops)
auth_user_username_key: CREATE UNIQUE INDEX auth_user_username_key ON USING btree (username)
authtoken_token_key_10f0b77e_like: CREATE INDEX authtoken_token_key_10f0b77e_like ON USING btree (key varchar_pattern_ops)
authtoken_token_pkey: CREATE UNIQUE INDEX authtoken_token_pkey ON USING btree (key)
authtoken_token_user_id_key: CREATE UNIQUE INDEX authtoken_token_user_id_key ON USING btree (user_id)
django_content_type_app_label_model_76bd3d3b_uniq: CREATE UNIQUE INDEX django_content_type_app_label_model_76bd3d3b_uniq ON USING btree (app_label, model)
django_content_type_pkey: CREATE UNIQUE INDEX django_content_type_pkey ON USING btree (id)
foreign keys:
auth_group_permissio_permission_id_84c5c92e_fk_auth_perm: FOREIGN KEY (permission_id) REFERENCES ` + schema + `.auth_permission(id) DEFERRABLE INITIALLY DEFERRED
auth_group_permissions_group_id_b120cbf9_fk_auth_group_id: FOREIGN KEY (group_id) REFERENCES ` + schema + `.auth_group(id) DEFERRABLE INITIALLY DEFERRED
auth_permission_content_type_id_2f476e4b_fk_django_co: FOREIGN KEY (content_type_id) REFERENCES ` + schema + `.django_content_type(id) DEFERRABLE INITIALLY DEFERRED
auth_user_groups_group_id_97559544_fk_auth_group_id: FOREIGN KEY (group_id) REFERENCES ` + schema + `.auth_group(id) DEFERRABLE INITIALLY DEFERRED
auth_user_groups_user_id_6a12ed8b_fk_auth_user_id: FOREIGN KEY (user_id) REFERENCES ` + schema + `.auth_user(id) DEFERRABLE INITIALLY DEFERRED
auth_user_user_permi_permission_id_1fbb5f2c_fk_auth_perm: FOREIGN KEY (permission_id) REFERENCES ` + schema + `.auth_permission(id) DEFERRABLE INITIALLY DEFERRED
auth_user_user_permissions_user_id_a95ead1b_fk_auth_user_id: FOREIGN KEY (user_id) REFERENCES ` + schema + `.auth_user(id) DEFERRABLE INITIALLY DEFERRED
authtoken_token_user_id_35299eff_fk_auth_user_id: FOREIGN KEY (user_id) REFERENCES ` + schema + `.auth_user(id) DEFERRABLE INITIALLY DEFERRED
identity sequence: ` + schema + `.auth_user_id_seq
`
}

// What `pg_dump` shows of the table knox's migrations make
// (../../testdata/knox/schema.postgres.sql; TestKnoxFixtureSchemaIsWhatMigrateKnoxMakes
// compares the two), in schema.
func knoxPGSchema(schema string) string {
	return `columns:
knox_authtoken.digest character varying(128) NOT NULL
knox_authtoken.created timestamp with time zone NOT NULL
knox_authtoken.user_id integer NOT NULL
knox_authtoken.expiry timestamp with time zone NULL
knox_authtoken.token_key character varying(25) NOT NULL
indexes:
knox_authtoken_digest_188c7e77_like: CREATE INDEX knox_authtoken_digest_188c7e77_like ON USING btree (digest varchar_pattern_ops)
knox_authtoken_pkey: CREATE UNIQUE INDEX knox_authtoken_pkey ON USING btree (digest)
knox_authtoken_token_key_8f4f7d47: CREATE INDEX knox_authtoken_token_key_8f4f7d47 ON USING btree (token_key)
knox_authtoken_token_key_8f4f7d47_like: CREATE INDEX knox_authtoken_token_key_8f4f7d47_like ON USING btree (token_key varchar_pattern_ops)
knox_authtoken_user_id_e5a5d899: CREATE INDEX knox_authtoken_user_id_e5a5d899 ON USING btree (user_id)
foreign keys:
knox_authtoken_user_id_e5a5d899_fk_auth_user_id: FOREIGN KEY (user_id) REFERENCES ` + schema + `.auth_user(id) DEFERRABLE INITIALLY DEFERRED
`
}

// pgDump is every row of every table in schema, as text.
func pgDump(t *testing.T, conn *pgx.Conn, schema string) string {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT quote_ident(table_name) FROM information_schema.tables WHERE table_schema = $1`, schema)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, table := range tables {
		var text *string
		if err := conn.QueryRow(ctx, `SELECT string_agg(t::text, E'\n') FROM "`+schema+`".`+table+` t`).Scan(&text); err != nil {
			t.Fatal(err)
		}
		if text != nil {
			b.WriteString(*text + "\n")
		}
	}
	return b.String()
}

// pgSchema describes the tables of schema as djangoPGSchema does:
// columns, indexes and constraints by the names Django gives them, and
// the identity sequence of auth_user when it is one of them.
func pgSchema(t *testing.T, conn *pgx.Conn, schema string, tables ...string) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	lines := func(title, query string, args ...any) {
		t.Helper()
		rows, err := conn.Query(ctx, query, args...)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(title + ":\n")
		for _, l := range got {
			b.WriteString(l + "\n")
		}
	}
	lines("columns", `SELECT table_name || '.' || column_name || ' ' || data_type || coalesce('(' || character_maximum_length || ')', '')
			|| CASE is_nullable WHEN 'NO' THEN ' NOT NULL' ELSE ' NULL' END || coalesce(' identity ' || identity_generation, '')
		FROM information_schema.columns WHERE table_schema = $1 AND table_name = ANY($2) ORDER BY table_name, ordinal_position`, schema, tables)
	lines("indexes", `SELECT indexname || ': ' || regexp_replace(indexdef, ' ON [^ ]+ ', ' ON ') FROM pg_indexes WHERE schemaname = $1 AND tablename = ANY($2) ORDER BY indexname`, schema, tables)
	lines("foreign keys", `SELECT conname || ': ' || pg_get_constraintdef(oid) FROM pg_constraint
		WHERE contype = 'f' AND connamespace = $1::regnamespace AND conrelid IN (SELECT oid FROM pg_class WHERE relnamespace = $1::regnamespace AND relname = ANY($2)) ORDER BY conname`, schema, tables)
	if !slices.Contains(tables, "auth_user") {
		return b.String()
	}
	var seq *string
	if err := conn.QueryRow(ctx, `SELECT pg_get_serial_sequence($1, 'id')`, qualify(schema, "auth_user")).Scan(&seq); err != nil {
		seq = nil // no table
	}
	if seq != nil {
		fmt.Fprintf(&b, "identity sequence: %s\n", *seq)
	} else {
		b.WriteString("identity sequence: none\n")
	}
	return b.String()
}

// The store contract Postgres meets, every part of it (Admin includes
// Logins, KnoxAdmin Knox).
var _ interface {
	store.Store
	store.Admin
	store.KnoxAdmin
	store.Watcher
	store.Permissions
	store.Groups
} = (*Postgres)(nil)
