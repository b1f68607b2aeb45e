// Package store defines what token_auth needs from a database that holds
// Django's auth_user and authtoken_token tables, and the errors every store
// reports in the same way.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Namespace is the Caddy module namespace of token stores. A store module is
// registered as Namespace+"."+kind (for example http.token_auth.stores.sqlite) and
// configured in JSON as {"kind": "<kind>", …}.
const Namespace = "http.token_auth.stores"

// DefaultQueryTimeout is how long a store's lookup may take when its
// query_timeout is not set: the query itself, and the wait for what it
// needs first (a pooled connection, a lock held by another writer).
const DefaultQueryTimeout = 2 * time.Second

// CheckQueryTimeout is every store's rule for its query_timeout: zero
// (unset) stands for DefaultQueryTimeout, a negative one is refused.
func CheckQueryTimeout(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("query_timeout must be positive, got %v", d)
	}
	return nil
}

// Sentinel errors. Stores wrap them, so callers test with errors.Is.
var (
	// ErrNotFound: no token has this key.
	ErrNotFound = errors.New("token not found")
	// ErrNoUser: no user has this username.
	ErrNoUser = errors.New("user does not exist")
	// ErrUserExists: a user with this username already exists.
	ErrUserExists = errors.New("a user with that username already exists")
	// ErrUnavailable: the store could not answer (down, locked, too slow).
	// token_auth answers 503 and never lets the request through.
	ErrUnavailable = errors.New("token store unavailable")
)

// Identity is the user a valid key belongs to.
type Identity struct {
	// ID is auth_user.id in decimal, as the placeholder {http.auth.user.id}
	// and the access log's user_id show it.
	ID string
	// Username is auth_user.username.
	Username string
	// Active is auth_user.is_active. Tokens of inactive users are refused
	// with DRF's "User inactive or deleted.".
	Active bool
	// Created is authtoken_token.created, for tokens drf { max_age }, in
	// UTC (set by Lookup; not by KnoxLookup, whose candidates carry their
	// own).
	Created time.Time
}

// User is a row of auth_user as login needs it (Logins.UserByName).
type User struct {
	// ID is auth_user.id in decimal.
	ID       string
	Username string
	// Password is the encoded password as Django stores it.
	Password string
	Active   bool
}

// Token describes one row of authtoken_token for listings.
type Token struct {
	Username string
	Key      string
	Created  time.Time
}

// NewUser is what Admin.AddUser writes into auth_user.
type NewUser struct {
	Username string
	// Password is an encoded Django password ("pbkdf2_sha256$…"), or an
	// unusable one ("!…").
	Password string
	Active   bool
	// Staff and Superuser are auth_user.is_staff and is_superuser.
	Staff, Superuser bool
}

// Store is what the request path needs: a database with Django's
// auth_user and authtoken_token tables, asked which user a key belongs to.
// Every store module implements it; the other interfaces below are found
// by type assertion where they are needed. Implementations are safe for
// concurrent use.
//
// Errors: a method that cannot answer because the database did not (down,
// locked, too slow, a file gone) returns an error wrapping ErrUnavailable
// and the cause (fmt.Errorf("%w: …: %w", ErrUnavailable, err)), so that
// errors.Is finds both; an answer that is a refusal wraps ErrNotFound,
// ErrNoUser or ErrUserExists.
type Store interface {
	// Lookup returns the identity owning key: one indexed query. It returns
	// an error wrapping ErrNotFound when no token has this key, and one
	// wrapping ErrUnavailable when the database cannot answer in time.
	Lookup(ctx context.Context, key string) (Identity, error)
}

// Logins is what the login and logout endpoints need beyond Lookup.
// token_auth requires it of the store only when login or logout is
// configured.
type Logins interface {
	// UserByName returns the user whose username is exactly username (case
	// and all), for a password check at login. An unknown username gives
	// an error wrapping ErrNoUser.
	UserByName(ctx context.Context, username string) (User, error)
	// TokenFor returns the token of the user named username, creating it
	// when the user has none; with reset, any existing token is deleted
	// first and a new one is created (drf_create_token semantics). A new
	// key never takes over another user's token: a colliding key is an
	// error. An unknown username gives an error wrapping ErrNoUser.
	TokenFor(ctx context.Context, username string, reset bool) (key string, err error)
	// DeleteTokenByKey deletes the token whose key is key (logout). It
	// reports whether there was one.
	DeleteTokenByKey(ctx context.Context, key string) (bool, error)
	// SetPassword replaces the encoded password of the user named
	// username. An unknown username gives an error wrapping ErrNoUser.
	SetPassword(ctx context.Context, username, encoded string) error
}

// Admin is what the `caddy token` command needs beyond Logins.
type Admin interface {
	Logins
	// AddUser inserts a user as Django's create_user would. A username
	// that exists gives an error wrapping ErrUserExists.
	AddUser(ctx context.Context, u NewUser) error
	// DeleteUserToken deletes the token of the user named username. It
	// reports whether there was one; an unknown username gives an error
	// wrapping ErrNoUser.
	DeleteUserToken(ctx context.Context, username string) (bool, error)
	// ListTokens lists every token with its user, ordered by username.
	ListTokens(ctx context.Context) ([]Token, error)
	// Migrate creates Django's auth_user and authtoken_token tables, and
	// those of groups and permissions (django_content_type,
	// auth_permission, auth_group, auth_group_permissions,
	// auth_user_groups, auth_user_user_permissions), with Django's exact
	// DDL, where they are missing (and whatever else the store's options
	// ask for, such as PostgreSQL's notify triggers). It never changes a
	// table that exists, so running it again changes nothing.
	Migrate(ctx context.Context) error
}

// ErrTokenLimit: the user holds as many live knox tokens as the limit
// allows (knox's TOKEN_LIMIT_PER_USER). It is an answer, as ErrNoUser is:
// never wrapped in ErrUnavailable.
var ErrTokenLimit = errors.New("maximum amount of tokens allowed per user exceeded")

// KnoxCandidate is a row of knox_authtoken whose token_key matched, with
// its user, as knox's TokenAuthentication sees it before it compares
// digests.
type KnoxCandidate struct {
	// Digest is knox_authtoken.digest: SHA-512 of the token, 128
	// lowercase hex characters.
	Digest string
	// User is the token's user (Identity.Created is not set).
	User    Identity
	Created time.Time
	// Expiry is knox_authtoken.expiry; the zero time for NULL (never).
	Expiry time.Time
	// UserHasExpired tells that the user holds some token whose expiry is
	// before the now passed to KnoxLookup: knox's cleanup is due.
	UserHasExpired bool
}

// KnoxNew is a row KnoxCreate inserts.
type KnoxNew struct {
	Digest   string
	TokenKey string
	// UserID is auth_user.id in decimal.
	UserID  string
	Created time.Time
	// Expiry is the zero time for a token that never expires.
	Expiry time.Time
}

// KnoxToken is a row of knox_authtoken as `caddy token list` shows it.
type KnoxToken struct {
	TokenKey string
	Username string
	Created  time.Time
	Expiry   time.Time // zero: never
}

// Knox is what tokens knox needs of a store: django-rest-knox's
// knox_authtoken table, which holds digests, never keys. Timestamps are
// written as Django writes them (on SQLite, text in UTC, microseconds,
// the fraction omitted when zero), and compared as Django compares them
// (on SQLite, as text). They are kept to the microsecond, truncated, as
// Python's datetime and PostgreSQL's timestamptz keep them, and read back
// in UTC.
//
// A store accepts a database with auth_user and either token table (a
// Django project may have installed rest_framework.authtoken, knox or
// both); the methods of the table that is missing fail with an error
// wrapping ErrUnavailable ("no such table", "relation does not exist").
// Each method is bounded by the store's query timeout, as Lookup is: they
// serve requests, or run off the request path on the handler's behalf. A
// user id that is not a decimal names no user (ErrNoUser).
//
// On PostgreSQL, deletes notify (store.Watcher) in their transaction,
// whether or not the triggers are installed; inserts and refreshes do
// not, and neither do the triggers: see store/postgres (knoxTriggerSQL).
type Knox interface {
	// KnoxLookup returns the rows whose token_key is tokenKey, with their
	// users (one indexed query, no write). An empty answer is not an error.
	KnoxLookup(ctx context.Context, tokenKey string, now time.Time) ([]KnoxCandidate, error)
	// KnoxCleanup deletes the tokens of the user (auth_user.id in decimal)
	// whose expiry is before now, as knox's _cleanup_token does, and
	// returns how many it deleted.
	KnoxCleanup(ctx context.Context, userID string, now time.Time) (int64, error)
	// KnoxRefresh sets the expiry of the token with this digest (knox's
	// AUTO_REFRESH), which moves it later: that is not a change Watch
	// reports. A token gone meanwhile is not an error.
	KnoxRefresh(ctx context.Context, digest string, expiry time.Time) error
	// KnoxCreate inserts t. With limit > 0 it first counts the user's
	// tokens that are live at t.Created (expiry after it, or NULL) and
	// returns an error wrapping ErrTokenLimit when there are limit or
	// more, inserting nothing; the count and the insert are one
	// transaction, and two creates for one user never both pass the
	// count. An unknown user gives an error wrapping ErrNoUser; a row
	// knox could not have written (an empty or too wide digest or
	// token_key, no Created, an expiry before it) a plain error. A digest
	// that exists is a failure (ErrUnavailable), never an overwrite.
	KnoxCreate(ctx context.Context, t KnoxNew, limit int) error
	// KnoxDelete deletes the token with this digest (knox's logout) and
	// reports whether there was one.
	KnoxDelete(ctx context.Context, digest string) (bool, error)
	// KnoxDeleteUser deletes every token of the user (auth_user.id in
	// decimal; knox's logoutall) and returns how many it deleted.
	KnoxDeleteUser(ctx context.Context, userID string) (int64, error)
	// SetLastLogin sets auth_user.last_login of the user (auth_user.id in
	// decimal), as Django's user_logged_in signal does. An unknown user
	// gives an error wrapping ErrNoUser.
	SetLastLogin(ctx context.Context, userID string, t time.Time) error
}

// KnoxAdmin is what `caddy token` needs in knox mode beyond Knox. Its
// methods are bounded by their context only.
type KnoxAdmin interface {
	Knox
	// KnoxList lists every knox token with its user, ordered by username,
	// then created, then token_key.
	KnoxList(ctx context.Context) ([]KnoxToken, error)
	// KnoxDeleteByTokenKey deletes the tokens whose token_key is tokenKey
	// (`caddy token revoke`) and returns how many it deleted.
	KnoxDeleteByTokenKey(ctx context.Context, tokenKey string) (int64, error)
	// KnoxPurgeExpired deletes every token whose expiry is before now and
	// returns how many it deleted.
	KnoxPurgeExpired(ctx context.Context, now time.Time) (int64, error)
	// MigrateKnox creates knox_authtoken with knox's exact DDL and indexes
	// where it is missing (after auth_user, which Migrate makes), and, on
	// PostgreSQL with notify, its notification trigger. It never changes a
	// table that exists.
	MigrateKnox(ctx context.Context) error
}

// Tables is implemented by stores that can tell a handler, as it starts,
// whether the token table it reads is there: a database needs auth_user
// and either token table, since a Django project may have installed
// rest_framework.authtoken, knox, or both.
type Tables interface {
	// HasTable reports whether the database has the table of this
	// unqualified name (authtoken_token, knox_authtoken) where the store
	// reads it. An error wrapping ErrUnavailable when the database does
	// not answer.
	HasTable(ctx context.Context, name string) (bool, error)
	// CreatesTables reports whether the store's options ask it to create
	// the tables it needs (create).
	CreatesTables() bool
}

// Watcher is implemented by stores that learn of changes made elsewhere:
// by Django, by `caddy token`, by another Caddy instance sharing the
// database.
type Watcher interface {
	// Watch calls flush whenever tokens or users may have changed, and
	// after any gap in which a change could have been missed (for example
	// when a listener reconnects), until stop is called or the store is
	// cleaned up. flush must be cheap and must not block. pushed reports
	// whether changes are actually pushed; when false, Watch may still be
	// called, but callers must bound staleness by time alone.
	//
	// live, when not nil, reports whether the subscriber holds anything a
	// change could make stale (a cache with unexpired entries). A store
	// that polls may skip its polls while no subscriber is live; when one
	// is live again it compares with its last poll, so a change made in
	// between still calls flush.
	Watch(flush func(), live func() bool) (stop func(), pushed bool)
}

// GenerateKey returns a new key as DRF makes them: 40 lowercase hex
// characters from 20 bytes of crypto/rand.
func GenerateKey() string {
	var b [20]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// UserPermissions is what `require` needs to know of a user, as Django's
// ModelBackend sees it.
type UserPermissions struct {
	// Staff and Superuser are auth_user.is_staff and is_superuser.
	Staff, Superuser bool
	// Groups are the names (auth_group.name) of the groups the user is a
	// member of (auth_user_groups), sorted bytewise.
	Groups []string
	// Perms are the user's own permissions (auth_user_user_permissions)
	// and those of its groups (auth_group_permissions), each once, named
	// as user.has_perm takes them, "<app_label>.<codename>"
	// (django_content_type.app_label, auth_permission.codename), sorted
	// bytewise. They are the rows as stored: that an active superuser has
	// every permission, and an inactive user none, is for the caller to
	// apply.
	Perms []string
}

// Permissions is what `require` needs of a store: Django's auth_group,
// auth_permission, django_content_type and their link tables, beside
// auth_user. token_auth requires it of the store only when a handler
// requires something of its users.
type Permissions interface {
	// UserPermissions returns the flags, groups and permissions of the
	// user whose auth_user.id is userID (in decimal), in one query. An
	// unknown user gives an error wrapping ErrNoUser.
	UserPermissions(ctx context.Context, userID string) (UserPermissions, error)
	// PermissionsPushed reports whether what Watch pushes includes every
	// change to the answers of UserPermissions: to auth_user.is_staff and
	// is_superuser, auth_user_groups, auth_user_user_permissions,
	// auth_group_permissions, auth_group, auth_permission and
	// django_content_type. Where it does not, a cache of them is bounded
	// by time alone.
	PermissionsPushed() bool
}

// Groups is what `caddy token groups` needs of a store.
type Groups interface {
	// EditGroups adds the user named username to the groups named in
	// add, creating the auth_group rows that are missing as Django's
	// Group.objects.get_or_create does, then removes it from those in
	// remove (a group it is not in, or that does not exist, is no error),
	// in one transaction; it returns the names of the groups that did not
	// exist and were created, and the user's groups after the change,
	// sorted bytewise. An unknown username gives an error wrapping
	// ErrNoUser.
	EditGroups(ctx context.Context, username string, add, remove []string) (created, groups []string, err error)
}
