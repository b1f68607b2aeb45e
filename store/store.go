// Package store defines what token_auth needs from a database that holds
// Django's auth_user and authtoken_token tables, and the errors every store
// reports in the same way.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"
)

// Namespace is the Caddy module namespace of token stores. A store module is
// registered as Namespace+"."+kind (for example http.token_auth.stores.sqlite) and
// configured in JSON as {"kind": "<kind>", …}.
const Namespace = "http.token_auth.stores"

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
}

// User is a row of auth_user as login needs it.
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

// NewUser is what AddUser writes into auth_user.
type NewUser struct {
	Username string
	// Password is an encoded Django password ("pbkdf2_sha256$…"), or an
	// unusable one ("!…").
	Password string
	Active   bool
}

// Store is a database with Django's auth_user and authtoken_token tables.
// Implementations are safe for concurrent use.
type Store interface {
	// Lookup returns the identity owning key: one indexed query. It returns
	// an error wrapping ErrNotFound when no token has this key, and one
	// wrapping ErrUnavailable when the database cannot answer in time.
	Lookup(ctx context.Context, key string) (Identity, error)

	// User returns the user whose username is exactly username, for a
	// password check at login. An unknown username gives an error wrapping
	// ErrNoUser.
	User(ctx context.Context, username string) (User, error)
	// DeleteKey deletes the token with this key (logout). It reports
	// whether there was one.
	DeleteKey(ctx context.Context, key string) (bool, error)

	// CreateToken returns the user's token, creating it when the user has
	// none; with reset, any existing token is deleted first and a new one is
	// created (drf_create_token semantics). An unknown username gives an
	// error wrapping ErrNoUser.
	CreateToken(ctx context.Context, username string, reset bool) (key string, err error)
	// DeleteToken deletes the user's token. It reports whether there was one.
	DeleteToken(ctx context.Context, username string) (bool, error)
	// ListTokens lists every token with its user, ordered by username.
	ListTokens(ctx context.Context) ([]Token, error)
	// AddUser inserts a user as Django's createuser would.
	AddUser(ctx context.Context, u NewUser) error
	// SetPassword replaces the encoded password of a user.
	SetPassword(ctx context.Context, username, encoded string) error
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
