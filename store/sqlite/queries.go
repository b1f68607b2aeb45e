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
	// As Django's UserManager.create_user leaves a row: not staff, not
	// superuser, empty names and email, joined now, never logged in.
	insertUserSQL = `INSERT INTO "auth_user" ("password", "last_login", "is_superuser", "username", "last_name", "email", "is_staff", "is_active", "date_joined", "first_name") VALUES (?, NULL, 0, ?, '', '', 0, ?, ?, '')`
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

// migrate creates the tables that are missing, and nothing else.
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
			u.Password, u.Username, u.Active, time.Now().UTC().Format(djangoTime))
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
