// Package postgres is token_auth's way into a Django project's PostgreSQL
// database, through github.com/jackc/pgx/v5 (one pgxpool.Pool per database,
// shared across handlers and config reloads).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/tokenauth/caddy-tokenauth/store"
	"github.com/tokenauth/caddy-tokenauth/store/internal/caddyfileopt"
	"github.com/tokenauth/caddy-tokenauth/store/internal/storeerr"
	"github.com/tokenauth/caddy-tokenauth/store/internal/subscribe"
)

func init() {
	caddy.RegisterModule(Postgres{})
}

// schemaName is what the schema option accepts: an unquoted PostgreSQL
// identifier of at most 63 bytes.
var schemaName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Postgres is a store in a PostgreSQL database with Django's auth_user and
// authtoken_token tables, normally the database of the Django project
// itself.
type Postgres struct {
	// DSN is the connection string, as a URL
	// (postgres://user:password@host:5432/dbname?sslmode=require) or in
	// key=value form (host=… dbname=… user=…); libpq's PG* environment
	// variables fill in what it leaves out. Caddy placeholders such as
	// {env.DATABASE_URL} are expanded. Required. Passwords never appear in
	// logs or errors.
	DSN string `json:"dsn,omitempty"`

	// MaxConns is the most connections the pool opens to this database,
	// shared by every handler that uses the same DSN. Default: pgx's,
	// max(4, number of CPUs), or pool_max_conns in the DSN.
	MaxConns int `json:"max_conns,omitempty"`

	// QueryTimeout bounds each lookup, including the wait for a
	// connection; past it, or when the database cannot be reached, the
	// request gets 503. Default: 2s.
	QueryTimeout caddy.Duration `json:"query_timeout,omitempty"`

	// Schema is the PostgreSQL schema that holds the two tables, which are
	// then named schema-qualified. It must be a plain identifier
	// ([A-Za-z_][A-Za-z0-9_]*, at most 63 characters). Default: none, the
	// tables are found through the connection's search_path (normally
	// public), as Django finds them.
	Schema string `json:"schema,omitempty"`

	// Create makes Django's tables (auth_user, authtoken_token, and those
	// of groups and permissions, with the DDL Django's migrate runs,
	// indexes and constraints included), and the schema if one is named,
	// where they are missing; it never
	// changes tables that exist. Default: false (the tables must be there:
	// run Django's migrate, or `caddy token migrate`).
	Create bool `json:"create,omitempty"`

	// Notify installs, where missing, a trigger function (token_auth_notify,
	// in the schema) and statement-level triggers on authtoken_token
	// (INSERT, UPDATE, DELETE, TRUNCATE) and auth_user (UPDATE of id,
	// username or is_active, DELETE, TRUNCATE; and a second one,
	// token_auth_notify_flags, on UPDATE of is_staff or is_superuser), on
	// each of Django's tables of groups and permissions where they are
	// there (django_content_type, auth_permission, auth_group,
	// auth_group_permissions, auth_user_groups,
	// auth_user_user_permissions: INSERT, UPDATE, DELETE, TRUNCATE), and
	// where knox_authtoken is there two on it (DELETE, TRUNCATE; an UPDATE
	// of a row unless it only moves expiry later, as knox's auto-refresh
	// does), that send a NOTIFY on the channel token_auth, so that every
	// Caddy sharing the database drops its cached lookups within
	// milliseconds of a change made by anyone, Django included. It never
	// changes triggers that exist. Triggers
	// installed earlier (by another Caddy, or `caddy token migrate
	// --notify`) are used without this option. Default: false (the
	// database may belong to Django: nothing is installed unless asked).
	Notify bool `json:"notify,omitempty"`

	db      *database
	shared  *pool
	poolKey string
	dsn     string   // redacted, for messages
	secrets []string // the passwords, to scrub from any error text
	logger  *zap.Logger

	stops *subscribe.StopList // this module's watches, stopped at Cleanup
}

// CaddyModule returns the Caddy module information.
func (Postgres) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  store.Namespace + ".postgres",
		New: func() caddy.Module { return new(Postgres) },
	}
}

// pools shares one pgxpool.Pool per connection string and size across
// handlers and config reloads.
var pools = caddy.NewUsagePool()

// pool is a shared pgxpool.Pool and the notification listener of its
// database.
type pool struct {
	*pgxpool.Pool
	listener *listener
}

// Destruct stops the listener and closes the pool when its last user is
// gone.
func (p *pool) Destruct() error {
	p.listener.shutdown()
	p.Close()
	return nil
}

// Provision sets up the pool (shared through a usage pool) without waiting
// for the database: when it can be reached, the tables are checked (and
// created, with Create); when it cannot, Caddy starts anyway with a
// warning, lookups answer 503 until it is back, and the tables are checked
// on first contact.
func (s *Postgres) Provision(ctx caddy.Context) error {
	return s.provision(ctx, ctx.Logger())
}

// provision is Provision with the logger given, for tests to watch it.
func (s *Postgres) provision(ctx context.Context, logger *zap.Logger) error {
	s.logger = logger
	// ReplaceKnown, not ReplaceAll: a password may contain braces.
	dsn := caddy.NewReplacer().ReplaceKnown(s.DSN, "")
	s.dsn, s.secrets = redactDSN(dsn)
	fail := func(err error) error {
		return fmt.Errorf("opening postgres store %s: %w", s.dsn, scrubError(err, s.secrets))
	}
	if strings.TrimSpace(dsn) == "" {
		if s.DSN != "" {
			return fail(fmt.Errorf("dsn %s is empty once expanded", redact(s.DSN)))
		}
		return fail(errors.New("no dsn"))
	}
	if err := s.validate(); err != nil {
		return fail(err)
	}
	timeout := time.Duration(s.QueryTimeout)
	if timeout <= 0 {
		timeout = store.DefaultQueryTimeout
	}

	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return fail(parseError(dsn, s.dsn))
	}
	// A password from PGPASSWORD or a passfile is just as secret.
	s.secrets = cleanSecrets(append(s.secrets, cfg.ConnConfig.Password))
	if s.MaxConns > 0 {
		cfg.MaxConns = int32(min(s.MaxConns, 1<<31-1))
	}

	s.poolKey = dsn + "\x00" + strconv.Itoa(s.MaxConns)
	v, _, err := pools.LoadOrNew(s.poolKey, func() (caddy.Destructor, error) {
		p, err := pgxpool.NewWithConfig(context.Background(), cfg) // does not connect
		if err != nil {
			return nil, err
		}
		return &pool{Pool: p, listener: newListener(cfg.ConnConfig)}, nil
	})
	if err != nil {
		s.poolKey = ""
		return fail(err)
	}
	s.shared = v.(*pool)
	s.db = newDatabase(s.shared.Pool, s.Schema, s.Create, timeout)
	s.db.notify = s.Notify
	s.stops = new(subscribe.StopList)

	pctx, cancel := context.WithTimeout(ctx, timeout)
	err = s.db.pool.Ping(pctx)
	cancel()
	if err != nil {
		if refused(err) {
			s.release()
			return fail(err)
		}
		s.logger.Warn("postgres store unreachable; starting anyway, lookups answer 503 until it is back",
			zap.String("dsn", s.dsn), zap.Error(scrubError(err, s.secrets)))
		return nil
	}
	mctx, cancel := context.WithTimeout(ctx, 2*timeout+5*time.Second)
	defer cancel()
	if err := s.db.ensure(mctx); err != nil {
		s.release()
		return fail(err)
	}
	return nil
}

// refused tells a database that answered "no" (bad password, no such
// database or role), which is a configuration error, from one that could
// not be reached or is starting up, which is an outage to ride out.
func refused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "28") || pgErr.Code == "3D000" // invalid authorization, invalid catalog name
}

// parseError describes why dsn does not parse without quoting it: pgx's
// own error text redacts passwords only on a best-effort basis, and the
// errors it wraps (net/url's) quote the string whole. The redacted string
// gives the same error for everything but a malformed password.
func parseError(dsn, redacted string) error {
	_, err := pgconn.ParseConfig(redacted)
	if err == nil {
		return errors.New("cannot parse dsn: malformed password (percent-encode it in a URL, quote it as '…' in key=value form)")
	}
	var pce *pgconn.ParseConfigError
	msg := err.Error()
	if errors.As(err, &pce) {
		// "cannot parse `<dsn>`: <reason>" → "cannot parse dsn: <reason>"
		if i := strings.Index(msg, "`: "); i >= 0 {
			msg = "cannot parse dsn: " + msg[i+3:]
		}
	}
	_, secrets := redactDSN(dsn)
	return errors.New(scrub(msg, secrets))
}

// redact is redactDSN for a message.
func redact(dsn string) string {
	r, _ := redactDSN(dsn)
	return r
}

// release gives the shared pool back.
func (s *Postgres) release() {
	if s.poolKey != "" {
		_, _ = pools.Delete(s.poolKey)
		s.poolKey = ""
	}
}

// Cleanup stops this module's watches and releases the shared pool.
func (s *Postgres) Cleanup() error {
	s.stops.StopAll()
	if s.poolKey == "" {
		return nil
	}
	_, err := pools.Delete(s.poolKey)
	s.poolKey = ""
	return err
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. Syntax:
//
//	store postgres [<dsn>] {
//		dsn           <dsn>
//		max_conns     <n>
//		query_timeout <duration>
//		schema        <name>
//		create
//		notify
//	}
func (s *Postgres) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return caddyfileopt.Block(d, "postgres", "dsn", &s.DSN, caddyfileopt.Options{
		"max_conns":     func() error { return s.unmarshalMaxConns(d) },
		"query_timeout": func() error { return caddyfileopt.PositiveDuration(d, &s.QueryTimeout) },
		"schema":        func() error { return caddyfileopt.String(d, &s.Schema) },
		"create":        func() error { return caddyfileopt.Flag(d, &s.Create) },
		"notify":        func() error { return caddyfileopt.Flag(d, &s.Notify) },
	}, s.validate)
}

// unmarshalMaxConns reads max_conns. Zero is the default in the JSON; the
// Caddyfile says it by leaving the option out.
func (s *Postgres) unmarshalMaxConns(d *caddyfile.Dispenser) error {
	var v string
	if err := caddyfileopt.String(d, &v); err != nil {
		return err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n == 0 {
		return d.Errf("max_conns must be a positive integer, got %s", v)
	}
	s.MaxConns = n
	return nil
}

// validate holds the rules of the store's config; the Caddyfile (after
// each option) and Provision both run it. Zero values stand for the
// defaults.
func (s *Postgres) validate() error {
	switch {
	case s.Schema != "" && !schemaName.MatchString(s.Schema):
		return fmt.Errorf("schema %q is not a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63 characters)", s.Schema)
	case s.MaxConns < 0:
		return fmt.Errorf("max_conns must not be negative, got %d", s.MaxConns)
	}
	return store.CheckQueryTimeout(time.Duration(s.QueryTimeout))
}

// Lookup implements store.Store.
func (s *Postgres) Lookup(ctx context.Context, key string) (store.Identity, error) {
	if !s.db.ready.Load() {
		// The database was down at provision: check the tables on first
		// contact, within the lookup's time.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.db.timeout)
		defer cancel()
		if err := s.ensure(ctx); err != nil {
			return store.Identity{}, scrubError(err, s.secrets)
		}
	}
	id, err := s.db.lookup(ctx, key)
	return id, scrubError(err, s.secrets)
}

// UserByName implements store.Logins.
func (s *Postgres) UserByName(ctx context.Context, username string) (store.User, error) {
	if err := s.ensure(ctx); err != nil {
		return store.User{}, scrubError(err, s.secrets)
	}
	u, err := s.db.userByName(ctx, username)
	return u, scrubError(err, s.secrets)
}

// TokenFor implements store.Logins.
func (s *Postgres) TokenFor(ctx context.Context, username string, reset bool) (string, error) {
	if err := s.ensure(ctx); err != nil {
		return "", s.wrap(err)
	}
	key, err := s.db.tokenFor(ctx, username, reset)
	return key, s.wrap(err)
}

// DeleteTokenByKey implements store.Logins.
func (s *Postgres) DeleteTokenByKey(ctx context.Context, key string) (bool, error) {
	if err := s.ensure(ctx); err != nil {
		return false, scrubError(err, s.secrets)
	}
	ok, err := s.db.deleteTokenByKey(ctx, key)
	return ok, scrubError(err, s.secrets)
}

// SetPassword implements store.Logins.
func (s *Postgres) SetPassword(ctx context.Context, username, encoded string) error {
	if err := s.ensure(ctx); err != nil {
		return s.wrap(err)
	}
	return s.wrap(s.db.setPassword(ctx, username, encoded))
}

// AddUser implements store.Admin.
func (s *Postgres) AddUser(ctx context.Context, u store.NewUser) error {
	if err := s.ensure(ctx); err != nil {
		return s.wrap(err)
	}
	return s.wrap(s.db.addUser(ctx, u))
}

// DeleteUserToken implements store.Admin.
func (s *Postgres) DeleteUserToken(ctx context.Context, username string) (bool, error) {
	if err := s.ensure(ctx); err != nil {
		return false, s.wrap(err)
	}
	ok, err := s.db.deleteUserToken(ctx, username)
	return ok, s.wrap(err)
}

// ListTokens implements store.Admin.
func (s *Postgres) ListTokens(ctx context.Context) ([]store.Token, error) {
	if err := s.ensure(ctx); err != nil {
		return nil, s.wrap(err)
	}
	tokens, err := s.db.listTokens(ctx)
	return tokens, s.wrap(err)
}

// Migrate implements store.Admin: the schema (with the schema option)
// and the tables that are missing are created, whatever the create option
// says, and with the notify option the triggers that are missing.
func (s *Postgres) Migrate(ctx context.Context) error {
	return s.wrap(s.db.migrateTables(ctx))
}

// ensure is database.ensure for a method of the store: tables that cannot
// be checked (or made) leave the store unavailable.
func (s *Postgres) ensure(ctx context.Context) error {
	return storeerr.Unavailable("postgres store", s.db.ensure(ctx))
}

// wrap names the store in an error of a write and scrubs it of secrets.
// The sentinels stay reachable through errors.Is.
func (s *Postgres) wrap(err error) error {
	if err == nil {
		return nil
	}
	return scrubError(fmt.Errorf("postgres store %s: %w", s.dsn, err), s.secrets)
}

// Interface guards (the store contract's are in contract_test.go, beside
// the suite that proves it)
var (
	_ caddy.Provisioner     = (*Postgres)(nil)
	_ caddy.CleanerUpper    = (*Postgres)(nil)
	_ caddyfile.Unmarshaler = (*Postgres)(nil)
)
