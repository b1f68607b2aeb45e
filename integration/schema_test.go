package integration

// The tables token_auth creates are the ones Django's own `migrate` makes:
// every fixture elsewhere builds its database from the stores' DDL, so
// only a comparison with the real Django (Debian's, run as
// /usr/bin/python3) can tell that DDL is still Django's.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/jackc/pgx/v5"

	"github.com/tokenauth/caddy-tokenauth/store/sqlite"
)

// schemaTables are the tables token_auth creates: auth_user,
// authtoken_token, and those of groups and permissions.
var schemaTables = []string{"auth_user", "authtoken_token", "django_content_type", "auth_permission",
	"auth_group", "auth_group_permissions", "auth_user_groups", "auth_user_user_permissions"}

func TestSchemaMatchesDjangoMigrate(t *testing.T) {
	djangoRequire(t)
	t.Logf("Django %s", djangoVersion(t))
	djangoEachStore(t, func(t *testing.T, kind string) {
		if kind == "postgres" {
			testPGSchemaMatchesDjango(t)
		} else {
			testSQLiteSchemaMatchesDjango(t)
		}
	})
}

// djangoVersion is django.VERSION as "major.minor.micro".
func djangoVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(djangoPython, "-c", `import django; print("%d.%d.%d" % django.VERSION[:3])`).Output()
	if err != nil {
		t.Fatalf("asking Django its version: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// schemaCaddy runs the built caddy with Caddy's data directory in dataHome
// (where the embedded store lives) and requires success.
func schemaCaddy(t *testing.T, dataHome string, args ...string) {
	t.Helper()
	cmd := exec.Command(caddyBinary(t), args...)
	cmd.Env = append(os.Environ(), "HOME="+dataHome, "XDG_DATA_HOME="+dataHome, "XDG_CONFIG_HOME="+dataHome)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("caddy %s: %v\n%s", strings.Join(args, " "), err, out.Bytes())
	}
}

// schemaDiff says which lines only want and only got have.
func schemaDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			fmt.Fprintf(&b, "  django only:      %s\n", l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			fmt.Fprintf(&b, "  token_auth only:  %s\n", l)
		}
	}
	if b.Len() == 0 {
		b.WriteString("  the same lines, in another order\n")
	}
	return b.String()
}

func testSQLiteSchemaMatchesDjango(t *testing.T) {
	django := sqliteSchema(t, djangoNewDB(t, "sqlite").path)

	made := map[string]string{}
	// The embedded default store, as `caddy token` creates it on first use.
	home := t.TempDir()
	schemaCaddy(t, home, "token", "migrate")
	made["embedded default store"] = filepath.Join(home, "caddy", "token_auth", "tokens.sqlite3")
	// `caddy token migrate --store sqlite:<path>` on a missing file.
	made["caddy token migrate --store sqlite:<path>"] = filepath.Join(t.TempDir(), "migrated.sqlite3")
	schemaCaddy(t, home, "token", "migrate", "--store", "sqlite:"+made["caddy token migrate --store sqlite:<path>"])
	// A store module with the create option, as a Caddyfile's
	// `store sqlite <path> { create }` provisions it.
	made["store sqlite <path> { create }"] = filepath.Join(t.TempDir(), "created.sqlite3")
	sqliteProvisionCreate(t, made["store sqlite <path> { create }"])

	for what, path := range made {
		if got := sqliteSchema(t, path); got != django {
			t.Errorf("%s: the schema differs from Django's migrate:\n%s", what, schemaDiff(django, got))
		}
	}
}

// sqliteProvisionCreate provisions the sqlite store module on path with
// create, then cleans it up.
func sqliteProvisionCreate(t *testing.T, path string) {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"path": path, "create": true})
	s := new(sqlite.SQLite)
	if err := json.Unmarshal(raw, s); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Cleanup(); err != nil {
		t.Fatal(err)
	}
}

// sqliteSchema describes the tables of the file at path: their and
// their indexes' rows of sqlite_master (the DDL, byte for byte; rootpage
// left out), then what SQLite makes of them: columns, indexes with their
// columns, and foreign keys.
func sqliteSchema(t *testing.T, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	dump := func(label, query string, args ...any) [][]string {
		t.Helper()
		rows, err := db.Query(query, args...)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		var all [][]string
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			line := make([]string, len(cols))
			for i, v := range vals {
				line[i] = cols[i] + "=" + map[bool]string{true: v.String, false: "NULL"}[v.Valid]
			}
			all = append(all, line)
			fmt.Fprintf(&b, "%s %s\n", label, strings.Join(line, " "))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return all
	}
	for _, table := range schemaTables {
		dump("master", `SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name = ? ORDER BY type, name`, table)
		dump("column "+table, `SELECT * FROM pragma_table_xinfo(?) ORDER BY cid`, table)
		for _, ix := range dump("index "+table, `SELECT name, "unique", origin, partial FROM pragma_index_list(?) ORDER BY name`, table) {
			name := strings.TrimPrefix(ix[0], "name=")
			dump("index column "+name, `SELECT * FROM pragma_index_xinfo(?) ORDER BY seqno`, name)
		}
		dump("foreign key "+table, `SELECT * FROM pragma_foreign_key_list(?) ORDER BY id, seq`, table)
	}
	return b.String()
}

func testPGSchemaMatchesDjango(t *testing.T) {
	django := pgSchema(t, djangoNewDB(t, "postgres").dsn)

	// Django made the primary keys (auth_user.id and the others but
	// authtoken_token's) serial columns before 4.1 and identity columns
	// since; the store creates the latter (see store/postgres). With an
	// older Django, its serial columns count as the identity columns 4.1
	// and later make.
	if v := djangoVersion(t); pgDjangoBefore41(v) {
		for _, table := range schemaTables {
			if table == "authtoken_token" {
				continue
			}
			serial := "column " + table + " 1 id integer - NO nextval('" + table + "_id_seq'::regclass) NO -"
			identity := "column " + table + " 1 id integer - NO - YES BY DEFAULT"
			if !strings.Contains(django, serial+"\n") {
				t.Fatalf("Django %s made no serial %s.id:\n%s", v, table, django)
			}
			django = strings.Replace(django, serial+"\n", identity+"\n", 1)
		}
		t.Logf("Django %s makes the id columns serial, not identity (4.1+): compared as identity", v)
	}

	_, dsn := pgFreshDatabase(t, pgDSN(t))
	schemaCaddy(t, t.TempDir(), "token", "migrate", "--store", dsn)
	if got := pgSchema(t, dsn); got != django {
		t.Errorf("caddy token migrate --store postgres://…: the schema differs from Django's migrate:\n%s", schemaDiff(django, got))
	}
}

// pgDjangoBefore41 reports whether version "major.minor.micro" is older
// than 4.1.
func pgDjangoBefore41(version string) bool {
	var major, minor, micro int
	if _, err := fmt.Sscanf(version, "%d.%d.%d", &major, &minor, &micro); err != nil {
		return false
	}
	return major < 4 || (major == 4 && minor < 1)
}

// pgSchema describes the tables in the public schema of the database
// of dsn: columns, constraints (with their names, definitions and
// deferrability) and indexes, "-" standing for NULL.
func pgSchema(t *testing.T, dsn string) string {
	t.Helper()
	ctx := context.Background()
	conn := pgConnect(t, dsn)
	var b strings.Builder
	for _, q := range []string{
		`SELECT concat_ws(' ', 'column', table_name, ordinal_position, column_name, data_type, coalesce(character_maximum_length::text, '-'),
				is_nullable, coalesce(column_default, '-'), is_identity, coalesce(identity_generation, '-'))
			FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ANY($1) ORDER BY table_name, ordinal_position`,
		`SELECT concat_ws(' ', 'constraint', conrelid::regclass::text, conname, contype::text, pg_get_constraintdef(oid), condeferrable, condeferred)
			FROM pg_constraint WHERE conrelid::regclass::text = ANY($1) ORDER BY 1`,
		`SELECT concat_ws(' ', 'index', indexdef) FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY($1) ORDER BY 1`,
		`SELECT concat_ws(' ', 'trigger', tgrelid::regclass::text, tgname) FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text = ANY($1) ORDER BY 1`,
	} {
		rows, err := conn.Query(ctx, q, schemaTables)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
