package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// testDSN is the real server the tests run against, from
// TOKENAUTH_PG_DSN (scripts/pg-cluster.sh prints it). Without it the test
// is skipped, except in CI, where that is a failure.
func testDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("TOKENAUTH_PG_DSN")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TOKENAUTH_PG_DSN is not set (eval \"$(scripts/pg-cluster.sh start <dir>)\")")
		}
		t.Skip("TOKENAUTH_PG_DSN is not set; eval \"$(scripts/pg-cluster.sh start <dir>)\" to run against PostgreSQL")
	}
	return dsn
}

// admin is a direct connection for setting up and inspecting a test's
// schema, closed when the test ends.
func admin(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to TOKENAUTH_PG_DSN: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// freshSchema names a schema of the test's own, dropped when it ends.
// It does not create it: the store's create option does, or the test.
func freshSchema(t *testing.T, dsn string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Logf("dropping schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS "`+name+`" CASCADE`); err != nil {
			t.Logf("dropping schema %s: %v", name, err)
		}
	})
	return name
}

// load provisions the store module from its JSON config as Caddy does;
// the module's Cleanup runs when the test ends.
func load(t *testing.T, cfg map[string]any) (*Postgres, error) {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	mod, err := ctx.LoadModuleByID(store.Namespace+".postgres", raw)
	if err != nil {
		return nil, err
	}
	return mod.(*Postgres), nil
}

// newStore is a provisioned store with Django's tables in a fresh schema.
func newStore(t *testing.T) *Postgres {
	t.Helper()
	dsn := testDSN(t)
	s, err := load(t, map[string]any{"dsn": dsn, "schema": freshSchema(t, dsn), "create": true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func addUser(t *testing.T, s store.Store, username string, active bool) {
	t.Helper()
	if err := s.AddUser(context.Background(), store.NewUser{Username: username, Password: "!unusable", Active: active}); err != nil {
		t.Fatalf("AddUser(%s): %v", username, err)
	}
}

func createToken(t *testing.T, s store.Store, username string) string {
	t.Helper()
	key, err := s.CreateToken(context.Background(), username, false)
	if err != nil {
		t.Fatalf("CreateToken(%s): %v", username, err)
	}
	return key
}

func TestLookup(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	addUser(t, s, "john", true)
	addUser(t, s, "gone", false)
	johnKey, goneKey := createToken(t, s, "john"), createToken(t, s, "gone")
	var johnID string
	if err := admin(t, testDSN(t)).QueryRow(ctx, `SELECT id::text FROM `+s.db.authUser+` WHERE username = 'john'`).Scan(&johnID); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		key     string
		want    store.Identity
		wantErr error
	}{
		{"token of an active user", johnKey, store.Identity{ID: johnID, Username: "john", Active: true}, nil},
		{"token of an inactive user", goneKey, store.Identity{Username: "gone", Active: false}, nil},
		{"unknown key", strings.Repeat("0", 40), store.Identity{}, store.ErrNotFound},
		{"key differing only in case", strings.ToUpper(johnKey), store.Identity{}, store.ErrNotFound},
		{"empty key", "", store.Identity{}, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Lookup(ctx, tt.key)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Lookup error = %v, want %v", err, tt.wantErr)
			}
			if tt.want.ID == "" && got.ID != "" && tt.wantErr == nil {
				got.ID = "" // not pinned
			}
			if got != tt.want {
				t.Errorf("Lookup = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCreateToken(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	addUser(t, s, "john", true)
	first := createToken(t, s, "john")
	if len(first) != 40 || strings.Trim(first, "0123456789abcdef") != "" {
		t.Fatalf("key %q is not 40 lowercase hex characters", first)
	}

	t.Run("existing token is returned unchanged", func(t *testing.T) {
		if again := createToken(t, s, "john"); again != first {
			t.Errorf("CreateToken = %s, want the existing %s", again, first)
		}
	})
	t.Run("reset replaces the token", func(t *testing.T) {
		reset, err := s.CreateToken(ctx, "john", true)
		if err != nil {
			t.Fatal(err)
		}
		if reset == first {
			t.Fatal("reset kept the old key")
		}
		if _, err := s.Lookup(ctx, first); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("old key after reset: Lookup error = %v, want ErrNotFound", err)
		}
		if id, err := s.Lookup(ctx, reset); err != nil || id.Username != "john" {
			t.Errorf("new key after reset: Lookup = %+v, %v", id, err)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		for _, reset := range []bool{false, true} {
			if _, err := s.CreateToken(ctx, "nobody", reset); !errors.Is(err, store.ErrNoUser) {
				t.Errorf("CreateToken(nobody, reset=%v) error = %v, want ErrNoUser", reset, err)
			}
		}
	})
	t.Run("a colliding key is an error, never a takeover", func(t *testing.T) {
		addUser(t, s, "mallory", true)
		// Give mallory john's key by hand: the insert must fail on the
		// primary key instead of moving the row.
		john, _ := s.CreateToken(ctx, "john", false)
		_, err := s.db.pool.Exec(ctx, s.db.q(insertTokenSQL), john, 0)
		if err == nil {
			t.Fatal("inserting an existing key succeeded")
		}
		if id, err := s.Lookup(ctx, john); err != nil || id.Username != "john" {
			t.Errorf("john's key now gives %+v, %v", id, err)
		}
	})
}

func TestDeleteToken(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	addUser(t, s, "john", true)

	// Each case makes the state it needs, so that it passes run alone.
	tests := []struct {
		name     string
		username string
		setup    func(t *testing.T) (key string) // john's key, if any
		want     bool
		wantErr  error
	}{
		{"user with a token", "john", func(t *testing.T) string { return createToken(t, s, "john") }, true, nil},
		{"user whose token is gone", "john", func(t *testing.T) string {
			key := createToken(t, s, "john")
			if _, err := s.DeleteToken(ctx, "john"); err != nil {
				t.Fatal(err)
			}
			return key
		}, false, nil},
		{"unknown user", "nobody", func(*testing.T) string { return "" }, false, store.ErrNoUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.setup(t)
			got, err := s.DeleteToken(ctx, tt.username)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("DeleteToken error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("DeleteToken = %v, want %v", got, tt.want)
			}
			if key == "" {
				return
			}
			if _, err := s.Lookup(ctx, key); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("deleted key: Lookup error = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestListTokensOrderedByUsername(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if got, err := s.ListTokens(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty store: ListTokens = %v, %v", got, err)
	}
	keys := map[string]string{}
	for _, u := range []string{"zed", "amy", "bob", "notoken"} {
		addUser(t, s, u, true)
		if u != "notoken" {
			keys[u] = createToken(t, s, u)
		}
	}
	before := time.Now()
	got, err := s.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tok := range got {
		names = append(names, tok.Username)
		if tok.Key != keys[tok.Username] {
			t.Errorf("%s: key %s, want %s", tok.Username, tok.Key, keys[tok.Username])
		}
		if d := before.Sub(tok.Created); d < -time.Minute || d > time.Minute {
			t.Errorf("%s: created %v, not about now (%v)", tok.Username, tok.Created, before)
		}
	}
	if want := []string{"amy", "bob", "zed"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ListTokens order = %v, want %v", names, want)
	}
}

func TestAddUserWritesTheRowDjangoWould(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const encoded = "pbkdf2_sha256$1000000$salt$hash="
	if err := s.AddUser(ctx, store.NewUser{Username: "john", Password: encoded, Active: true}); err != nil {
		t.Fatal(err)
	}
	addUser(t, s, "sleepy", false)

	var (
		password, first, last, email string
		superuser, staff, active     bool
		lastLogin                    *time.Time
		joined                       time.Time
	)
	err := admin(t, testDSN(t)).QueryRow(ctx, `SELECT password, last_login, is_superuser, first_name, last_name, email, is_staff, is_active, date_joined FROM `+s.db.authUser+` WHERE username = 'john'`).
		Scan(&password, &lastLogin, &superuser, &first, &last, &email, &staff, &active, &joined)
	if err != nil {
		t.Fatal(err)
	}
	if password != encoded || lastLogin != nil || superuser || staff || !active || first != "" || last != "" || email != "" {
		t.Errorf("row = password %q last_login %v superuser %v staff %v active %v names %q %q email %q",
			password, lastLogin, superuser, staff, active, first, last, email)
	}
	if d := time.Since(joined); d < -time.Minute || d > time.Minute {
		t.Errorf("date_joined %v is not now", joined)
	}

	tests := []struct {
		name    string
		user    store.NewUser
		wantErr error
	}{
		{"existing username", store.NewUser{Username: "john", Password: "!x", Active: true}, store.ErrUserExists},
		{"username differing in case is another user", store.NewUser{Username: "John", Password: "!x", Active: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.AddUser(ctx, tt.user)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("AddUser error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSetPassword(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	addUser(t, s, "john", true)
	tests := []struct {
		name, username, encoded string
		wantErr                 error
	}{
		{"existing user", "john", "pbkdf2_sha256$1000000$new$hash=", nil},
		{"unknown user", "nobody", "pbkdf2_sha256$1000000$new$hash=", store.ErrNoUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.SetPassword(ctx, tt.username, tt.encoded)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("SetPassword error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			var got string
			if err := admin(t, testDSN(t)).QueryRow(ctx, `SELECT password FROM `+s.db.authUser+` WHERE username = $1`, tt.username).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.encoded {
				t.Errorf("password = %q, want %q", got, tt.encoded)
			}
		})
	}
}

// What `pg_dump` shows of the tables Django 4.2 and 5.2 make
// (reference/drf-behaviour.md §2.7, §3.1).
func TestCreateMakesDjangosTables(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	conn := admin(t, testDSN(t))
	schema := s.Schema

	type column struct {
		Table, Name, Type string
		Length            *int32
		Nullable          string
		Identity          *string
	}
	n := func(i int32) *int32 { return &i }
	byDefault := "BY DEFAULT"
	wantColumns := []column{
		{"auth_user", "id", "integer", nil, "NO", &byDefault},
		{"auth_user", "password", "character varying", n(128), "NO", nil},
		{"auth_user", "last_login", "timestamp with time zone", nil, "YES", nil},
		{"auth_user", "is_superuser", "boolean", nil, "NO", nil},
		{"auth_user", "username", "character varying", n(150), "NO", nil},
		{"auth_user", "first_name", "character varying", n(150), "NO", nil},
		{"auth_user", "last_name", "character varying", n(150), "NO", nil},
		{"auth_user", "email", "character varying", n(254), "NO", nil},
		{"auth_user", "is_staff", "boolean", nil, "NO", nil},
		{"auth_user", "is_active", "boolean", nil, "NO", nil},
		{"auth_user", "date_joined", "timestamp with time zone", nil, "NO", nil},
		{"authtoken_token", "key", "character varying", n(40), "NO", nil},
		{"authtoken_token", "created", "timestamp with time zone", nil, "NO", nil},
		{"authtoken_token", "user_id", "integer", nil, "NO", nil},
	}
	rows, err := conn.Query(ctx, `SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, identity_generation
		FROM information_schema.columns WHERE table_schema = $1 ORDER BY table_name, ordinal_position`, schema)
	if err != nil {
		t.Fatal(err)
	}
	var gotColumns []column
	var c column
	if _, err := pgx.ForEachRow(rows, []any{&c.Table, &c.Name, &c.Type, &c.Length, &c.Nullable, &c.Identity}, func() error {
		gotColumns = append(gotColumns, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotColumns, wantColumns) {
		t.Errorf("columns differ from Django's:\n got %s\nwant %s", dump(gotColumns), dump(wantColumns))
	}

	// Indexes and constraints, by the names Django gives them.
	var gotIndexes []string
	rows, err = conn.Query(ctx, `SELECT indexname || ': ' || regexp_replace(indexdef, ' ON [^ ]+ ', ' ON ') FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname`, schema)
	if err != nil {
		t.Fatal(err)
	}
	if gotIndexes, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	wantIndexes := []string{
		"auth_user_pkey: CREATE UNIQUE INDEX auth_user_pkey ON USING btree (id)",
		"auth_user_username_6821ab7c_like: CREATE INDEX auth_user_username_6821ab7c_like ON USING btree (username varchar_pattern_ops)",
		"auth_user_username_key: CREATE UNIQUE INDEX auth_user_username_key ON USING btree (username)",
		"authtoken_token_key_10f0b77e_like: CREATE INDEX authtoken_token_key_10f0b77e_like ON USING btree (key varchar_pattern_ops)",
		"authtoken_token_pkey: CREATE UNIQUE INDEX authtoken_token_pkey ON USING btree (key)",
		"authtoken_token_user_id_key: CREATE UNIQUE INDEX authtoken_token_user_id_key ON USING btree (user_id)",
	}
	if !reflect.DeepEqual(gotIndexes, wantIndexes) {
		t.Errorf("indexes differ from Django's:\n got %q\nwant %q", gotIndexes, wantIndexes)
	}

	var fk string
	err = conn.QueryRow(ctx, `SELECT conname || ': ' || pg_get_constraintdef(oid) FROM pg_constraint
		WHERE contype = 'f' AND connamespace = $1::regnamespace`, schema).Scan(&fk)
	if err != nil {
		t.Fatal(err)
	}
	wantFK := `authtoken_token_user_id_35299eff_fk_auth_user_id: FOREIGN KEY (user_id) REFERENCES ` + schema + `.auth_user(id) DEFERRABLE INITIALLY DEFERRED`
	if fk != wantFK {
		t.Errorf("foreign key = %s, want %s", fk, wantFK)
	}

	var seq string
	if err := conn.QueryRow(ctx, `SELECT pg_get_serial_sequence($1, 'id')`, s.db.authUser).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if seq != schema+".auth_user_id_seq" {
		t.Errorf("identity sequence = %s, want %s.auth_user_id_seq", seq, schema)
	}
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCreateLeavesExistingTablesAlone(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	schema := freshSchema(t, dsn)
	conn := admin(t, dsn)
	// An auth_user that is not quite Django's, with a row in it.
	for _, stmt := range []string{
		`CREATE SCHEMA "` + schema + `"`,
		`CREATE TABLE "` + schema + `"."auth_user" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "password" varchar(128) NOT NULL, "last_login" timestamp with time zone NULL, "is_superuser" boolean NOT NULL, "username" varchar(150) NOT NULL UNIQUE, "first_name" varchar(150) NOT NULL, "last_name" varchar(150) NOT NULL, "email" varchar(254) NOT NULL, "is_staff" boolean NOT NULL, "is_active" boolean NOT NULL, "date_joined" timestamp with time zone NOT NULL, "extra" text NULL)`,
		`INSERT INTO "` + schema + `"."auth_user" (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined, extra) VALUES ('!', false, 'john', '', '', '', false, true, now(), 'kept')`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	s, err := load(t, map[string]any{"dsn": dsn, "schema": schema, "create": true})
	if err != nil {
		t.Fatal(err)
	}
	var extra string
	if err := conn.QueryRow(ctx, `SELECT extra FROM "`+schema+`"."auth_user" WHERE username = 'john'`).Scan(&extra); err != nil || extra != "kept" {
		t.Fatalf("existing auth_user changed: extra = %q, %v", extra, err)
	}
	key := createToken(t, s, "john")
	if id, err := s.Lookup(ctx, key); err != nil || id.Username != "john" {
		t.Errorf("Lookup = %+v, %v", id, err)
	}

	// Provisioning again with create changes nothing either.
	s2, err := load(t, map[string]any{"dsn": dsn, "schema": schema, "create": true})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s2.Lookup(ctx, key); err != nil || id.Username != "john" {
		t.Errorf("after a second create: Lookup = %+v, %v", id, err)
	}
}

func TestProvisionNamesTheMissingTable(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	conn := admin(t, dsn)
	tests := []struct {
		name    string
		setup   []string // run in the fresh schema
		missing string
	}{
		{"empty schema", nil, "auth_user"},
		{"only auth_user", ddlAuthUser, "authtoken_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			schema := freshSchema(t, dsn)
			if _, err := conn.Exec(ctx, `CREATE SCHEMA "`+schema+`"`); err != nil {
				t.Fatal(err)
			}
			d := newDatabase(nil, schema, false, 0)
			for _, stmt := range tt.setup {
				if _, err := conn.Exec(ctx, d.ddl(stmt)); err != nil {
					t.Fatal(err)
				}
			}
			_, err := load(t, map[string]any{"dsn": dsn, "schema": schema})
			want := "no table " + schema + "." + tt.missing + " (run Django's migrate"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Provision error = %v, want one containing %q", err, want)
			}
		})
	}
}

func TestPoolIsSharedAndOutlivesAReload(t *testing.T) {
	dsn := testDSN(t)
	schema := freshSchema(t, dsn)
	ctx := context.Background()
	cfg := map[string]any{"dsn": dsn, "schema": schema, "create": true, "max_conns": 3}

	oldCtx, cancelOld := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancelOld()
	raw, _ := json.Marshal(cfg)
	mod, err := oldCtx.LoadModuleByID(store.Namespace+".postgres", raw)
	if err != nil {
		t.Fatal(err)
	}
	old := mod.(*Postgres)
	addUser(t, old, "john", true)
	key := createToken(t, old, "john")

	// A reload: the new config is provisioned, then the old one cleaned up.
	s, err := load(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.db.pool != old.db.pool {
		t.Error("two modules with the same dsn have different pools")
	}
	if got := s.db.pool.Config().MaxConns; got != 3 {
		t.Errorf("pool MaxConns = %d, want 3", got)
	}
	cancelOld()
	if id, err := s.Lookup(ctx, key); err != nil || id.Username != "john" {
		t.Errorf("after the old config's cleanup: Lookup = %+v, %v", id, err)
	}
}

func TestPasswordNeverInErrorsOrLogs(t *testing.T) {
	dsn := testDSN(t)
	const password = "Hunter22-secret"
	tests := []struct {
		name string
		dsn  string
		// wantErr: provisioning fails (the server said no); otherwise it
		// succeeds with a warning and lookups fail.
		wantErr string
	}{
		{"url to a closed port", "postgres://django:" + password + "@127.0.0.1:1/app?sslmode=disable&connect_timeout=1", ""},
		{"key=value to a closed port", "host=127.0.0.1 port=1 user=django password='" + password + "' dbname=app sslmode=disable", ""},
		{"url to a database that does not exist", withDatabase(t, dsn, "no_such_db", password), "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			s := &Postgres{DSN: tt.dsn, QueryTimeout: caddy.Duration(time.Second)}
			t.Cleanup(func() { _ = s.Cleanup() })
			err := s.provision(context.Background(), zap.New(core))
			var texts []string
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Provision error = %v, want one containing %q", err, tt.wantErr)
				}
				texts = append(texts, err.Error())
			} else {
				if err != nil {
					t.Fatalf("Provision with the server unreachable: %v", err)
				}
				if logs.FilterMessageSnippet("unreachable").Len() != 1 {
					t.Errorf("no warning logged: %v", logs.All())
				}
				_, lerr := s.Lookup(context.Background(), strings.Repeat("a", 40))
				if !errors.Is(lerr, store.ErrUnavailable) {
					t.Errorf("Lookup error = %v, want ErrUnavailable", lerr)
				}
				texts = append(texts, lerr.Error())
				_, cerr := s.CreateToken(context.Background(), "john", false)
				if cerr == nil {
					t.Error("CreateToken against a closed port succeeded")
				} else {
					texts = append(texts, cerr.Error())
				}
			}
			for _, e := range logs.All() {
				b, _ := json.Marshal(e.ContextMap())
				texts = append(texts, e.Message+" "+string(b))
			}
			t.Log(strings.Join(texts, "\n"))
			for _, text := range texts {
				if strings.Contains(text, password) || strings.Contains(text, strings.ToLower(password)) {
					t.Errorf("password leaked: %s", text)
				}
			}
			if !strings.Contains(strings.Join(texts, "\n"), "xxxxx") {
				t.Errorf("nothing says which (redacted) dsn failed: %q", texts)
			}
		})
	}
}

// withDatabase returns dsn naming another database and carrying a password
// (trust authentication ignores it).
func withDatabase(t *testing.T, dsn, db, password string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return "postgres://" + cfg.User + ":" + password + "@" + cfg.Host + ":" + itoa(int(cfg.Port)) + "/" + db + "?sslmode=disable"
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// freshDatabase creates a database of the test's own and returns its DSN;
// it is dropped when the test ends.
func freshDatabase(t *testing.T, dsn string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn := admin(t, dsn)
	if _, err := conn.Exec(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			t.Logf("dropping database %s: %v", name, err)
		}
	})
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return "postgres://" + cfg.User + "@" + cfg.Host + ":" + itoa(int(cfg.Port)) + "/" + name + "?sslmode=disable"
}

// Without a schema the tables are Django's own, unqualified, in public.
func TestWithoutSchemaTablesAreFoundThroughSearchPath(t *testing.T) {
	dsn := freshDatabase(t, testDSN(t))
	ctx := context.Background()
	if _, err := load(t, map[string]any{"dsn": dsn}); err == nil || !strings.Contains(err.Error(), "no table auth_user") {
		t.Fatalf("Provision of an empty database: error = %v, want no table auth_user", err)
	}
	s, err := load(t, map[string]any{"dsn": dsn, "create": true})
	if err != nil {
		t.Fatal(err)
	}
	addUser(t, s, "john", true)
	key := createToken(t, s, "john")
	if id, err := s.Lookup(ctx, key); err != nil || id.Username != "john" {
		t.Errorf("Lookup = %+v, %v", id, err)
	}
	var n int
	if err := admin(t, dsn).QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('auth_user', 'authtoken_token')`).Scan(&n); err != nil || n != 2 {
		t.Errorf("tables in public: %d, %v", n, err)
	}
}
