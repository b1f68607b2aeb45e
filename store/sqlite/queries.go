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

// django-rest-knox's knox_authtoken for SQLite, statement for statement as
// its migrations 0001…0009 leave it in sqlite_master (knox 5.0, Django
// 3.2–5.2): the table, then its token_key and user_id indexes.
var ddlKnox = []string{
	`CREATE TABLE "knox_authtoken" ("digest" varchar(128) NOT NULL PRIMARY KEY, "created" datetime NOT NULL, "user_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED, "expiry" datetime NULL, "token_key" varchar(25) NOT NULL)`,
	`CREATE INDEX "knox_authtoken_token_key_8f4f7d47" ON "knox_authtoken" ("token_key")`,
	`CREATE INDEX "knox_authtoken_user_id_e5a5d899" ON "knox_authtoken" ("user_id")`,
}

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
	lookupSQL = `SELECT "auth_user"."id", "auth_user"."username", "auth_user"."is_active", CAST("authtoken_token"."created" AS TEXT) FROM "authtoken_token" INNER JOIN "auth_user" ON ("authtoken_token"."user_id" = "auth_user"."id") WHERE "authtoken_token"."key" = ?`

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

	// knox_authtoken (knox.go): django-rest-knox's tokens, which hold a
	// digest and a token_key, never a key. Timestamps are written as
	// Django writes them (djangoText) and compared as text, as Django's
	// SQLite backend compares them.
	//
	// The one query of knox's request path: the token_key index, auth_user
	// by its primary key, and for the EXISTS the user_id index. ?1 is the
	// token_key, ?2 now.
	knoxLookupSQL = `SELECT "knox_authtoken"."digest", CAST("knox_authtoken"."created" AS TEXT), CAST("knox_authtoken"."expiry" AS TEXT), "auth_user"."id", "auth_user"."username", "auth_user"."is_active", EXISTS (SELECT 1 FROM "knox_authtoken" U0 WHERE U0."user_id" = "knox_authtoken"."user_id" AND U0."expiry" < ?2) FROM "knox_authtoken" INNER JOIN "auth_user" ON ("knox_authtoken"."user_id" = "auth_user"."id") WHERE "knox_authtoken"."token_key" = ?1`
	// As knox's _cleanup_token: the user's tokens that have expired.
	knoxCleanupSQL = `DELETE FROM "knox_authtoken" WHERE "user_id" = ? AND "expiry" < ?`
	// As knox's renew_token: save(update_fields=('expiry',)).
	knoxRefreshSQL = `UPDATE "knox_authtoken" SET "expiry" = ? WHERE "digest" = ?`
	// knoxLockUserSQL: the user exists. Run in a transaction that holds
	// the file's write lock (BEGIN IMMEDIATE, see _txlock), so that two
	// creates for a user count and insert one after the other.
	knoxLockUserSQL = `SELECT EXISTS (SELECT 1 FROM "auth_user" WHERE "id" = ?)`
	// What counts toward TOKEN_LIMIT_PER_USER: expiry after now, or none.
	knoxCountLiveSQL        = `SELECT count(*) FROM "knox_authtoken" WHERE "user_id" = ? AND ("expiry" > ? OR "expiry" IS NULL)`
	knoxInsertSQL           = `INSERT INTO "knox_authtoken" ("digest", "token_key", "user_id", "created", "expiry") VALUES (?, ?, ?, ?, ?)`
	knoxDeleteSQL           = `DELETE FROM "knox_authtoken" WHERE "digest" = ?`
	knoxDeleteUserSQL       = `DELETE FROM "knox_authtoken" WHERE "user_id" = ?`
	setLastLoginSQL         = `UPDATE "auth_user" SET "last_login" = ? WHERE "id" = ?`
	knoxListSQL             = `SELECT "knox_authtoken"."token_key", "auth_user"."username", CAST("knox_authtoken"."created" AS TEXT), CAST("knox_authtoken"."expiry" AS TEXT) FROM "knox_authtoken" INNER JOIN "auth_user" ON ("knox_authtoken"."user_id" = "auth_user"."id") ORDER BY "auth_user"."username", "knox_authtoken"."created", "knox_authtoken"."token_key"`
	knoxDeleteByTokenKeySQL = `DELETE FROM "knox_authtoken" WHERE "token_key" = ?`
	knoxPurgeExpiredSQL     = `DELETE FROM "knox_authtoken" WHERE "expiry" < ?`

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

// djangoText is a datetime as Django's SQLite backend writes it
// (DatabaseOperations.adapt_datetimefield_value, Django 3.2–5.2: str() of
// the datetime made naive in UTC, with USE_TZ=True):
// "YYYY-MM-DD HH:MM:SS.ffffff", and "YYYY-MM-DD HH:MM:SS" when the
// microseconds are zero, as Python's str() leaves them. Nanoseconds are
// truncated, as PostgreSQL's microseconds are. Django compares these
// values as text, and so does the store.
func djangoText(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond() < 1000 {
		return t.Format("2006-01-02 15:04:05")
	}
	return t.Format("2006-01-02 15:04:05.000000")
}

// djangoNullText is djangoText, or NULL for the zero time (never).
func djangoNullText(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return djangoText(t)
}

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

// prepare checks the schema and prepares the lookup statements of the
// token tables there. A database needs auth_user and either token table:
// a Django project may have installed rest_framework.authtoken, knox, or
// both. The statement of a table that is missing is prepared on first use
// (see stmt), once Migrate or MigrateKnox has made it; until then its
// queries fail with SQLite's "no such table".
func (h *handle) prepare(ctx context.Context) error {
	exists := make(map[string]bool)
	for _, table := range []string{"auth_user", "authtoken_token", "knox_authtoken"} {
		var ok bool
		if err := h.db.QueryRowContext(ctx, tableExistsSQL, table).Scan(&ok); err != nil {
			return err
		}
		exists[table] = ok
	}
	switch {
	case !exists["auth_user"]:
		return noTable("auth_user")
	case !exists["authtoken_token"] && !exists["knox_authtoken"]:
		return noTable("authtoken_token")
	}
	for _, q := range []struct {
		table, what string
		st          *stmt
	}{{"authtoken_token", "token lookup", &h.lookupq}, {"knox_authtoken", "knox token lookup", &h.knoxq}} {
		if !exists[q.table] {
			continue
		}
		if _, err := q.st.get(ctx, h.db); err != nil {
			return fmt.Errorf("preparing %s: %w", q.what, err)
		}
	}
	return nil
}

// noTable is the error of a table that is not there.
func noTable(table string) error {
	return fmt.Errorf("no table %s (run Django's migrate with rest_framework.authtoken or knox installed, or use the create option)", table)
}

// stmt is a statement of the request path, prepared once for its pool:
// when the pool opens if its table is there, else on first use.
type stmt struct {
	query string
	st    atomic.Pointer[sql.Stmt]
}

// get returns the prepared statement, preparing it if need be.
func (s *stmt) get(ctx context.Context, db *sql.DB) (*sql.Stmt, error) {
	if st := s.st.Load(); st != nil {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, s.query)
	if err != nil {
		return nil, err
	}
	if !s.st.CompareAndSwap(nil, st) {
		st.Close() // prepared meanwhile by another query
	}
	return s.st.Load(), nil
}

// close closes the statement if it was prepared.
func (s *stmt) close() {
	if st := s.st.Load(); st != nil {
		st.Close()
	}
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
	st, err := h.lookupq.get(ctx, h.db)
	if err != nil {
		return store.Identity{}, storeerr.Unavailable("sqlite lookup", err)
	}
	var id int64
	var ident store.Identity
	var created string
	err = st.QueryRowContext(ctx, key).Scan(&id, &ident.Username, &ident.Active, &created)
	if err := storeerr.Row(err, sql.ErrNoRows, store.ErrNotFound, "sqlite lookup"); err != nil {
		return store.Identity{}, err
	}
	ident.ID = strconv.FormatInt(id, 10)
	ident.Created = parseDjangoTime(created)
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
		if _, err := tx.ExecContext(ctx, insertTokenSQL, key, djangoText(time.Now()), uid); err != nil {
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
			u.Password, u.Superuser, u.Username, u.Staff, u.Active, djangoText(time.Now()))
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
