// Package storetest is the contract every token store passes: one suite,
// run by each store's own tests (storetest.Run, and storetest.RunKnox for
// a store with knox's tables), that pins down what every method of
// store.Store, store.Logins, store.Admin, store.Permissions, store.Groups,
// store.Knox and store.KnoxAdmin means, the sentinel errors included,
// Django's and knox's exact tables,
// and how a store fails when its database does not answer. A store's SQL
// may differ from another's where the dialects do; this suite is what
// proves that they agree.
package storetest

import (
	"testing"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// Store is a store under test: every interface of the contract.
type Store interface {
	store.Store
	store.Admin
	store.Permissions
	store.Groups
}

// Fixture is one store under test, on a database of its own (a file, a
// schema), provisioned with Django's tables in place and no rows. Every
// function reads or changes the database behind the store's back.
type Fixture struct {
	Store Store

	// Schema describes the tables the store makes (auth_user,
	// authtoken_token, and those of groups and permissions) as the
	// database holds them: their DDL, or what the database makes of it
	// (columns, indexes, constraints), in a form of the store's choosing.
	// WantSchema is what Schema gives for the tables Django's migrate
	// makes.
	Schema     func(t *testing.T) string
	WantSchema string

	// DropTables drops every table the store makes.
	DropTables func(t *testing.T)

	// Exec runs one statement, which names Django's tables unqualified,
	// on the store's database (in its schema).
	Exec func(t *testing.T, stmt string)

	// UserID is auth_user.id of the user named username, in decimal.
	UserID func(t *testing.T, username string) string

	// UserRow is the auth_user row of the user named username, by column:
	// booleans as "true" or "false", NULL as "NULL", date_joined in
	// RFC 3339.
	UserRow func(t *testing.T, username string) map[string]string

	// TokenRow is the authtoken_token row of the user named username
	// (key, created and user_id, in any one text form), and whether there
	// is one.
	TokenRow func(t *testing.T, username string) (row string, ok bool)

	// SetGenerateKey makes the store generate new keys with gen until the
	// test ends.
	SetGenerateKey func(t *testing.T, gen func() string)

	// Stopped, when not nil, makes a store of its own whose database
	// stops answering once the store is provisioned with its tables (the
	// server shut down, the file removed) and returns it, with a user
	// "alice" who has a token of key key. A store with knox's methods has
	// knox_authtoken too.
	Stopped func(t *testing.T) (s Store, key string)

	// For RunKnox: KnoxSchema describes knox_authtoken as Schema does the
	// other two, and WantKnoxSchema is what it gives for the table knox's
	// migrations make. DropKnoxTable drops it.
	KnoxSchema     func(t *testing.T) string
	WantKnoxSchema string
	DropKnoxTable  func(t *testing.T)

	// Dump, when not nil, is everything the database holds, as text (every
	// value of every table, and the bytes of its files where it has
	// some), for a test to search for what must never be stored.
	Dump func(t *testing.T) string
}

// Run runs the suite, calling open for a new fixture in every test.
func Run(t *testing.T, open func(t *testing.T) *Fixture) {
	t.Run("Lookup", func(t *testing.T) { testLookup(t, open) })
	t.Run("UserByName", func(t *testing.T) { testUserByName(t, open) })
	t.Run("TokenFor", func(t *testing.T) { testTokenFor(t, open) })
	t.Run("TokenForNeverTakesOverACollidingKey", func(t *testing.T) { testCollision(t, open) })
	t.Run("DeleteTokenByKey", func(t *testing.T) { testDeleteTokenByKey(t, open) })
	t.Run("SetPassword", func(t *testing.T) { testSetPassword(t, open) })
	t.Run("AddUserWritesTheRowDjangoWould", func(t *testing.T) { testAddUser(t, open) })
	t.Run("DeleteUserToken", func(t *testing.T) { testDeleteUserToken(t, open) })
	t.Run("ListTokensOrderedByUsername", func(t *testing.T) { testListTokens(t, open) })
	t.Run("MigrateMakesDjangosTablesAndIsIdempotent", func(t *testing.T) { testMigrate(t, open) })
	t.Run("UnavailableOnATimeoutWrapsTheDeadline", func(t *testing.T) { testTimeout(t, open) })
	t.Run("UnavailableWithItsCauseOnAStoppedDatabase", func(t *testing.T) { testStopped(t, open) })
	runPermissions(t, open)
}
