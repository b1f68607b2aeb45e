package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenauth/caddy-tokenauth/store"
	"github.com/tokenauth/caddy-tokenauth/store/internal/storeerr"
)

// Django's DDL for SQLite, byte for byte as `manage.py migrate` leaves it in
// sqlite_master (Django 3.2–5.2).
const (
	ddlAuthUser = `CREATE TABLE "auth_user" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "password" varchar(128) NOT NULL, "last_login" datetime NULL, "is_superuser" bool NOT NULL, "username" varchar(150) NOT NULL UNIQUE, "last_name" varchar(150) NOT NULL, "email" varchar(254) NOT NULL, "is_staff" bool NOT NULL, "is_active" bool NOT NULL, "date_joined" datetime NOT NULL, "first_name" varchar(150) NOT NULL)`
	ddlToken    = `CREATE TABLE "authtoken_token" ("key" varchar(40) NOT NULL PRIMARY KEY, "created" datetime NOT NULL, "user_id" integer NOT NULL UNIQUE REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)`
)

// Schema is Django's DDL for the two tables, in creation order, for tools
// and tests that make a database as `manage.py migrate` would.
var Schema = []string{ddlAuthUser, ddlToken}

// generateKey makes the key of a new token; tests replace it to make one
// collide with a key that exists.
var generateKey = store.GenerateKey

// The statements of the store, in the order of store/postgres/queries.go,
// under the same names.
const (
	// The one query of the request path: the primary-key index of
	// authtoken_token, then auth_user by its primary key.
	lookupSQL = `SELECT "auth_user"."id", "auth_user"."username", "auth_user"."is_active" FROM "authtoken_token" INNER JOIN "auth_user" ON ("authtoken_token"."user_id" = "auth_user"."id") WHERE "authtoken_token"."key" = ?`

	userSQL              = `SELECT "id", "username", "password", "is_active" FROM "auth_user" WHERE "username" = ?`
	userIDSQL            = `SELECT "id" FROM "auth_user" WHERE "username" = ?`
	tokenOfUserSQL       = `SELECT "key" FROM "authtoken_token" WHERE "user_id" = ?`
	deleteTokenOfUserSQL = `DELETE FROM "authtoken_token" WHERE "user_id" = ?`
	// An insert, never an upsert: a colliding key fails instead of taking
	// over another user's token (DRF 3.17's force_insert).
	insertTokenSQL      = `INSERT INTO "authtoken_token" ("key", "created", "user_id") VALUES (?, ?, ?)`
	deleteTokenByKeySQL = `DELETE FROM "authtoken_token" WHERE "key" = ?`
	setPasswordSQL      = `UPDATE "auth_user" SET "password" = ? WHERE "username" = ?`
	userExistsSQL       = `SELECT EXISTS (SELECT 1 FROM "auth_user" WHERE "username" = ?)`
	// As Django's UserManager.create_user leaves a row (staff and
	// superuser as given): empty names and email, joined now, never
	// logged in.
	insertUserSQL = `INSERT INTO "auth_user" ("password", "last_login", "is_superuser", "username", "last_name", "email", "is_staff", "is_active", "date_joined", "first_name") VALUES (?, NULL, ?, ?, '', '', ?, ?, ?, '')`
	listTokensSQL = `SELECT "auth_user"."username", "authtoken_token"."key", CAST("authtoken_token"."created" AS TEXT) FROM "authtoken_token" INNER JOIN "auth_user" ON ("authtoken_token"."user_id" = "auth_user"."id") ORDER BY "auth_user"."username"`

	// tableExistsSQL tells whether the main database has a table of this
	// name.
	tableExistsSQL = `SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE "type" = 'table' AND "name" = ?)`
	// walSQL lets readers run beside a writer, in a file token_auth made.
	walSQL = `PRAGMA journal_mode=WAL`
)

// Change watching (watch.go) and file replacement (file.go).
const (
	// dataVersionSQL changes its answer on one connection whenever
	// another connection commits to the file.
	dataVersionSQL = `PRAGMA data_version`
	// checkpointSQL moves a pool's -wal into its file and empties it.
	checkpointSQL = `PRAGMA wal_checkpoint(TRUNCATE)`
)

// djangoTime is how Django's SQLite backend writes a datetime (UTC with
// USE_TZ=True).
const djangoTime = "2006-01-02 15:04:05.000000"

// database is one store file, shared by every store module that names it:
// the connection pool open on it, replaced when another file takes its
// place (see file.go).
type database struct {
	path    string
	dsn     string
	timeout time.Duration

	cur     atomic.Pointer[handle] // never nil once open returns
	epoch   time.Time              // the zero of checked
	checked atomic.Int64           // when the file was last checked, in ns since epoch
	swapMu  sync.Mutex             // held by the one checking the file; only ever tried on the request path
	closed  bool                   // set by Destruct, under swapMu

	watchers  watchers
	watchMu   sync.Mutex
	watchConn *sql.Conn // the poller's own connection
	watchH    *handle   // the pool watchConn belongs to, held by it
}

// Destruct closes the database when its last user is gone.
func (d *database) Destruct() error {
	d.swapMu.Lock()
	d.closed = true
	old := d.cur.Swap(&handle{err: fmt.Errorf("sqlite store %s is closed", d.path)})
	d.swapMu.Unlock()
	fi, err := os.Stat(d.path)
	moved := old.file != nil && (err != nil || !os.SameFile(fi, old.file))
	return d.retire(old, moved)
}

// migrate creates the tables that are missing (auth_user,
// authtoken_token, and those of groups and permissions), and nothing else.
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	created := false
	for _, t := range []struct{ name, ddl string }{{"auth_user", ddlAuthUser}, {"authtoken_token", ddlToken}} {
		var exists bool
		if err := tx.QueryRowContext(ctx, tableExistsSQL, t.name).Scan(&exists); err != nil {
			return err
		}
		if exists {
			continue
		}
		if _, err := tx.ExecContext(ctx, t.ddl); err != nil {
			return fmt.Errorf("creating table %s: %w", t.name, err)
		}
		created = true
	}
	if made, err := createPermissionTables(ctx, tx); err != nil {
		return err
	} else if made {
		created = true
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if created {
		// A file token_auth made itself: let readers run beside a writer.
		if _, err := db.ExecContext(ctx, walSQL); err != nil {
			return err
		}
	}
	return nil
}

// prepare checks the schema and prepares the lookup statement.
func (h *handle) prepare(ctx context.Context) error {
	for _, table := range []string{"auth_user", "authtoken_token"} {
		var exists bool
		if err := h.db.QueryRowContext(ctx, tableExistsSQL, table).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("no table %s (run Django's migrate with rest_framework.authtoken installed, or use the create option)", table)
		}
	}
	st, err := h.db.PrepareContext(ctx, lookupSQL)
	if err != nil {
		return fmt.Errorf("preparing token lookup: %w", err)
	}
	h.lookupq = st
	return nil
}

// migrateTables is Admin.Migrate: migrate on the current pool.
func (d *database) migrateTables(ctx context.Context) error {
	h, err := d.use(ctx)
	if err != nil {
		return err
	}
	defer h.release()
	return storeerr.Unavailable("sqlite migrate", migrate(ctx, h.db))
}

func (d *database) lookup(ctx context.Context, key string) (store.Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	h, err := d.use(ctx)
	if err != nil {
		return store.Identity{}, err
	}
	defer h.release()
	var id int64
	var ident store.Identity
	err = h.lookupq.QueryRowContext(ctx, key).Scan(&id, &ident.Username, &ident.Active)
	if err := storeerr.Row(err, sql.ErrNoRows, store.ErrNotFound, "sqlite lookup"); err != nil {
		return store.Identity{}, err
	}
	ident.ID = strconv.FormatInt(id, 10)
	return ident, nil
}

func (d *database) userByName(ctx context.Context, username string) (store.User, error) {
	h, err := d.use(ctx)
	if err != nil {
		return store.User{}, err
	}
	defer h.release()
	var u store.User
	var id int64
	err = h.db.QueryRowContext(ctx, userSQL, username).Scan(&id, &u.Username, &u.Password, &u.Active)
	if err := storeerr.Row(err, sql.ErrNoRows, fmt.Errorf("user %s: %w", username, store.ErrNoUser), "sqlite user"); err != nil {
		return store.User{}, err
	}
	u.ID = strconv.FormatInt(id, 10)
	return u, nil
}

// userID is the id of the user named username, in tx.
func userID(ctx context.Context, tx *sql.Tx, username string) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, userIDSQL, username).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("user %s: %w", username, store.ErrNoUser)
	}
	return id, err
}

// inTx runs f in a transaction on the current pool (BEGIN IMMEDIATE, see
// _txlock), committed when f succeeds; errors are op's.
func (d *database) inTx(ctx context.Context, op string, f func(tx *sql.Tx) error) error {
	h, err := d.use(ctx)
	if err != nil {
		return err
	}
	defer h.release()
	tx, err := h.db.BeginTx(ctx, nil)
	if err != nil {
		return storeerr.Unavailable(op, err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return storeerr.Unavailable(op, err)
	}
	return storeerr.Unavailable(op, tx.Commit())
}

func (d *database) tokenFor(ctx context.Context, username string, reset bool) (string, error) {
	var key string
	err := d.inTx(ctx, "sqlite create token", func(tx *sql.Tx) error {
		uid, err := userID(ctx, tx, username)
		if err != nil {
			return err
		}
		if reset {
			if _, err := tx.ExecContext(ctx, deleteTokenOfUserSQL, uid); err != nil {
				return err
			}
		}
		err = tx.QueryRowContext(ctx, tokenOfUserSQL, uid).Scan(&key)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		key = generateKey()
		if _, err := tx.ExecContext(ctx, insertTokenSQL, key, time.Now().UTC().Format(djangoTime), uid); err != nil {
			return fmt.Errorf("inserting token: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return key, nil
}

func (d *database) deleteTokenByKey(ctx context.Context, key string) (bool, error) {
	h, err := d.use(ctx)
	if err != nil {
		return false, err
	}
	defer h.release()
	res, err := h.db.ExecContext(ctx, deleteTokenByKeySQL, key)
	if err != nil {
		return false, storeerr.Unavailable("sqlite delete", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

func (d *database) setPassword(ctx context.Context, username, encoded string) error {
	h, err := d.use(ctx)
	if err != nil {
		return err
	}
	defer h.release()
	res, err := h.db.ExecContext(ctx, setPasswordSQL, encoded, username)
	if err != nil {
		return storeerr.Unavailable("sqlite set password", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("user %s: %w", username, store.ErrNoUser)
	}
	return nil
}

func (d *database) addUser(ctx context.Context, u store.NewUser) error {
	return d.inTx(ctx, "sqlite add user", func(tx *sql.Tx) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, userExistsSQL, u.Username).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return fmt.Errorf("user %s: %w", u.Username, store.ErrUserExists)
		}
		_, err := tx.ExecContext(ctx, insertUserSQL,
			u.Password, u.Superuser, u.Username, u.Staff, u.Active, time.Now().UTC().Format(djangoTime))
		if err != nil {
			return fmt.Errorf("inserting user: %w", err)
		}
		return nil
	})
}

func (d *database) deleteUserToken(ctx context.Context, username string) (bool, error) {
	var deleted bool
	err := d.inTx(ctx, "sqlite delete token", func(tx *sql.Tx) error {
		uid, err := userID(ctx, tx, username)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, deleteTokenOfUserSQL, uid)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		deleted = n > 0
		return nil
	})
	return deleted, err
}

func (d *database) listTokens(ctx context.Context) ([]store.Token, error) {
	h, err := d.use(ctx)
	if err != nil {
		return nil, err
	}
	defer h.release()
	rows, err := h.db.QueryContext(ctx, listTokensSQL)
	if err != nil {
		return nil, storeerr.Unavailable("sqlite list", err)
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		var t store.Token
		var created string
		if err := rows.Scan(&t.Username, &t.Key, &created); err != nil {
			return nil, storeerr.Unavailable("sqlite list", err)
		}
		t.Created = parseDjangoTime(created)
		out = append(out, t)
	}
	return out, storeerr.Unavailable("sqlite list", rows.Err())
}

// parseDjangoTime reads a datetime as Django's SQLite backend stores it; a
// value it cannot read gives the zero time.
func parseDjangoTime(s string) time.Time {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// ---- permissions (permissions.go): Django's tables of groups and
// permissions, and the statements of `require` and `caddy token groups`.

// Django's DDL for the tables of contenttypes and auth beside auth_user,
// byte for byte as `manage.py migrate` leaves it in sqlite_master (Django
// 3.2–5.2), each table with its indexes, in an order that creates a table
// after those it references.
var ddlPermissions = []struct {
	table string
	ddl   []string
}{
	{"django_content_type", []string{
		`CREATE TABLE "django_content_type" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "app_label" varchar(100) NOT NULL, "model" varchar(100) NOT NULL)`,
		`CREATE UNIQUE INDEX "django_content_type_app_label_model_76bd3d3b_uniq" ON "django_content_type" ("app_label", "model")`,
	}},
	{"auth_permission", []string{
		`CREATE TABLE "auth_permission" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "content_type_id" integer NOT NULL REFERENCES "django_content_type" ("id") DEFERRABLE INITIALLY DEFERRED, "codename" varchar(100) NOT NULL, "name" varchar(255) NOT NULL)`,
		`CREATE UNIQUE INDEX "auth_permission_content_type_id_codename_01ab375a_uniq" ON "auth_permission" ("content_type_id", "codename")`,
		`CREATE INDEX "auth_permission_content_type_id_2f476e4b" ON "auth_permission" ("content_type_id")`,
	}},
	{"auth_group", []string{
		`CREATE TABLE "auth_group" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(150) NOT NULL UNIQUE)`,
	}},
	{"auth_group_permissions", []string{
		`CREATE TABLE "auth_group_permissions" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "group_id" integer NOT NULL REFERENCES "auth_group" ("id") DEFERRABLE INITIALLY DEFERRED, "permission_id" integer NOT NULL REFERENCES "auth_permission" ("id") DEFERRABLE INITIALLY DEFERRED)`,
		`CREATE UNIQUE INDEX "auth_group_permissions_group_id_permission_id_0cd325b0_uniq" ON "auth_group_permissions" ("group_id", "permission_id")`,
		`CREATE INDEX "auth_group_permissions_group_id_b120cbf9" ON "auth_group_permissions" ("group_id")`,
		`CREATE INDEX "auth_group_permissions_permission_id_84c5c92e" ON "auth_group_permissions" ("permission_id")`,
	}},
	{"auth_user_groups", []string{
		`CREATE TABLE "auth_user_groups" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED, "group_id" integer NOT NULL REFERENCES "auth_group" ("id") DEFERRABLE INITIALLY DEFERRED)`,
		`CREATE UNIQUE INDEX "auth_user_groups_user_id_group_id_94350c0c_uniq" ON "auth_user_groups" ("user_id", "group_id")`,
		`CREATE INDEX "auth_user_groups_user_id_6a12ed8b" ON "auth_user_groups" ("user_id")`,
		`CREATE INDEX "auth_user_groups_group_id_97559544" ON "auth_user_groups" ("group_id")`,
	}},
	{"auth_user_user_permissions", []string{
		`CREATE TABLE "auth_user_user_permissions" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED, "permission_id" integer NOT NULL REFERENCES "auth_permission" ("id") DEFERRABLE INITIALLY DEFERRED)`,
		`CREATE UNIQUE INDEX "auth_user_user_permissions_user_id_permission_id_14a6b632_uniq" ON "auth_user_user_permissions" ("user_id", "permission_id")`,
		`CREATE INDEX "auth_user_user_permissions_user_id_a95ead1b" ON "auth_user_user_permissions" ("user_id")`,
		`CREATE INDEX "auth_user_user_permissions_permission_id_1fbb5f2c" ON "auth_user_user_permissions" ("permission_id")`,
	}},
}

// The statements of permissions.go, in the order of
// store/postgres/queries.go, under the same names.
const (
	// The one query of a user's permissions, by auth_user's primary key:
	// the flags, then the groups and the permissions (the user's own and
	// its groups', each once) as JSON arrays, through the indexes Django
	// makes on user_id and group_id.
	userPermissionsSQL = `SELECT "auth_user"."is_staff", "auth_user"."is_superuser", ` +
		`(SELECT json_group_array("auth_group"."name") FROM "auth_user_groups" INNER JOIN "auth_group" ON ("auth_user_groups"."group_id" = "auth_group"."id") WHERE "auth_user_groups"."user_id" = "auth_user"."id"), ` +
		`(SELECT json_group_array(DISTINCT "django_content_type"."app_label" || '.' || "auth_permission"."codename") FROM "auth_permission" INNER JOIN "django_content_type" ON ("auth_permission"."content_type_id" = "django_content_type"."id") ` +
		`WHERE "auth_permission"."id" IN (SELECT "permission_id" FROM "auth_user_user_permissions" WHERE "user_id" = "auth_user"."id") ` +
		`OR "auth_permission"."id" IN (SELECT "auth_group_permissions"."permission_id" FROM "auth_group_permissions" INNER JOIN "auth_user_groups" ON ("auth_group_permissions"."group_id" = "auth_user_groups"."group_id") WHERE "auth_user_groups"."user_id" = "auth_user"."id")) ` +
		`FROM "auth_user" WHERE "auth_user"."id" = ?`

	// Group.objects.get_or_create(name=…): the row, then its id.
	insertGroupSQL = `INSERT INTO "auth_group" ("name") VALUES (?) ON CONFLICT ("name") DO NOTHING`
	groupIDSQL     = `SELECT "id" FROM "auth_group" WHERE "name" = ?`
	// user.groups.add(group), user.groups.remove(group).
	addUserGroupSQL    = `INSERT INTO "auth_user_groups" ("user_id", "group_id") VALUES (?, ?) ON CONFLICT ("user_id", "group_id") DO NOTHING`
	removeUserGroupSQL = `DELETE FROM "auth_user_groups" WHERE "user_id" = ? AND "group_id" IN (SELECT "id" FROM "auth_group" WHERE "name" = ?)`
	userGroupsSQL      = `SELECT "auth_group"."name" FROM "auth_user_groups" INNER JOIN "auth_group" ON ("auth_user_groups"."group_id" = "auth_group"."id") WHERE "auth_user_groups"."user_id" = ?`
)
