// Package sqlite is token_auth's embedded default store and its way into a
// Django db.sqlite3, through modernc.org/sqlite (pure Go, no cgo).
package sqlite

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/tokenauth/caddy-tokenauth/store"
	"github.com/tokenauth/caddy-tokenauth/store/internal/caddyfileopt"
	"github.com/tokenauth/caddy-tokenauth/store/internal/subscribe"
)

func init() {
	caddy.RegisterModule(SQLite{})
}

// SQLite is a store in an SQLite file with Django's auth_user and
// authtoken_token tables: a Django project's db.sqlite3, or the embedded
// default that token_auth creates itself.
type SQLite struct {
	// Path is the database file. Caddy placeholders such as {env.DB_PATH}
	// are expanded. A file that is named must exist and already hold
	// Django's tables (it is opened as is and never altered) unless Create
	// is set. Default: the embedded store at
	// <caddy data dir>/token_auth/tokens.sqlite3, created on first use.
	//
	// A file token_auth creates is readable by its owner only (0600, and
	// so are the -wal, -shm and -journal SQLite keeps beside it); an
	// existing file keeps its mode. When another file is renamed over the
	// path (a restore, rsync, a deploy), the store notices within 25ms,
	// forgets what it cached and opens the new file; while no file is there
	// (or one that is not a regular file), requests get 503. A file that
	// vanished is not re-created while Caddy runs, even for the embedded
	// store.
	Path string `json:"path,omitempty"`

	// Create makes the file and Django's tables (auth_user,
	// authtoken_token, and those of groups and permissions, with Django's
	// exact DDL) when they are missing; it never changes tables that
	// exist. Default: true for the embedded
	// store, false for a named Path.
	Create bool `json:"create,omitempty"`

	// QueryTimeout bounds each lookup, including the wait for a lock held
	// by another writer such as Django; past it the request gets 503.
	// Default: 2s.
	QueryTimeout caddy.Duration `json:"query_timeout,omitempty"`

	db      *database
	poolKey string
	creates bool // create, or the embedded store: the tables are made where missing

	stops *subscribe.StopList // this module's watches, stopped at Cleanup
}

// CaddyModule returns the Caddy module information.
func (SQLite) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  store.Namespace + ".sqlite",
		New: func() caddy.Module { return new(SQLite) },
	}
}

// DefaultPath is the embedded store's file.
func DefaultPath() string {
	return filepath.Join(caddy.AppDataDir(), "token_auth", "tokens.sqlite3")
}

// databases shares one *sql.DB per file and timeout across handlers and
// config reloads.
var databases = caddy.NewUsagePool()

// Provision opens the file (shared through a usage pool) and checks that
// Django's tables are there.
func (s *SQLite) Provision(caddy.Context) error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("opening sqlite store %s: %w", s.Path, err)
	}
	path := caddy.NewReplacer().ReplaceAll(s.Path, "")
	create := s.Create
	if path == "" {
		path, create = DefaultPath(), true
	}
	s.creates = create
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("opening sqlite store %s: %w", path, err)
	}
	timeout := time.Duration(s.QueryTimeout)
	if timeout <= 0 {
		timeout = store.DefaultQueryTimeout
	}
	s.poolKey = abs + "\x00" + strconv.FormatInt(int64(timeout), 10) + "\x00" + strconv.FormatBool(create)
	v, _, err := databases.LoadOrNew(s.poolKey, func() (caddy.Destructor, error) {
		return open(abs, create, timeout)
	})
	if err != nil {
		s.poolKey = ""
		return err
	}
	s.db = v.(*database)
	s.stops = new(subscribe.StopList)
	return nil
}

// Cleanup stops this module's watches and releases the shared database.
func (s *SQLite) Cleanup() error {
	s.stops.StopAll()
	if s.poolKey == "" {
		return nil
	}
	_, err := databases.Delete(s.poolKey)
	return err
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. Syntax:
//
//	store sqlite [<path>] {
//		path          <path>
//		create
//		query_timeout <duration>
//	}
func (s *SQLite) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return caddyfileopt.Block(d, "sqlite", "path", &s.Path, caddyfileopt.Options{
		"create":        func() error { return caddyfileopt.Flag(d, &s.Create) },
		"query_timeout": func() error { return caddyfileopt.PositiveDuration(d, &s.QueryTimeout) },
	}, s.validate)
}

// validate is the store's only rule, shared by the Caddyfile and
// Provision: the query timeout's.
func (s *SQLite) validate() error {
	return store.CheckQueryTimeout(time.Duration(s.QueryTimeout))
}

// Watch implements store.Watcher: commits to the file by any other
// connection or process are noticed within a poll interval (25ms), through
// PRAGMA data_version, read while any subscriber is live; so is another
// file taking its place, or its removal (see checkFile).
func (s *SQLite) Watch(flush func(), live func() bool) (stop func(), pushed bool) {
	stop = s.db.watch(flush, live)
	s.stops.Add(stop)
	return stop, true
}

// Lookup implements store.Store.
func (s *SQLite) Lookup(ctx context.Context, key string) (store.Identity, error) {
	return s.db.lookup(ctx, key)
}

// UserByName implements store.Logins.
func (s *SQLite) UserByName(ctx context.Context, username string) (store.User, error) {
	return s.db.userByName(ctx, username)
}

// TokenFor implements store.Logins.
func (s *SQLite) TokenFor(ctx context.Context, username string, reset bool) (string, error) {
	return s.db.tokenFor(ctx, username, reset)
}

// DeleteTokenByKey implements store.Logins.
func (s *SQLite) DeleteTokenByKey(ctx context.Context, key string) (bool, error) {
	return s.db.deleteTokenByKey(ctx, key)
}

// SetPassword implements store.Logins.
func (s *SQLite) SetPassword(ctx context.Context, username, encoded string) error {
	return s.db.setPassword(ctx, username, encoded)
}

// AddUser implements store.Admin.
func (s *SQLite) AddUser(ctx context.Context, u store.NewUser) error {
	return s.db.addUser(ctx, u)
}

// DeleteUserToken implements store.Admin.
func (s *SQLite) DeleteUserToken(ctx context.Context, username string) (bool, error) {
	return s.db.deleteUserToken(ctx, username)
}

// ListTokens implements store.Admin.
func (s *SQLite) ListTokens(ctx context.Context) ([]store.Token, error) {
	return s.db.listTokens(ctx)
}

// Migrate implements store.Admin: the tables that are missing from the
// file are created (whatever the create option says, which decides
// whether Provision may create the file and the tables itself).
func (s *SQLite) Migrate(ctx context.Context) error {
	return s.db.migrateTables(ctx)
}

// open opens the file, creating it and the tables if asked to, and prepares
// the lookup. SQLite is always told to open the file as it is (mode=rw):
// a missing file is created here, owner-only, so that no connection the
// pool opens later re-creates a file that vanished.
func open(path string, create bool, timeout time.Duration) (*database, error) {
	fail := func(err error) (*database, error) {
		return nil, fmt.Errorf("opening sqlite store %s: %w", path, err)
	}
	fi, err := openFile(path, create)
	if err != nil {
		return fail(err)
	}
	q := url.Values{}
	q.Set("_txlock", "immediate")
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(timeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("mode", "rw")
	db := &database{
		path:    path,
		dsn:     (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String(),
		timeout: timeout,
		epoch:   time.Now(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout+5*time.Second)
	defer cancel()
	h, err := db.openHandle(ctx, fi, create)
	if err != nil {
		return fail(err)
	}
	db.cur.Store(h)
	return db, nil
}

// Interface guards (the store contract's are in contract_test.go, beside
// the suite that proves it)
var (
	_ caddy.Provisioner     = (*SQLite)(nil)
	_ caddy.CleanerUpper    = (*SQLite)(nil)
	_ caddyfile.Unmarshaler = (*SQLite)(nil)
)
