package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// call is one method of the contract, called with arguments that would
// succeed on a database that answers.
type call struct {
	method string
	run    func(ctx context.Context, s Store) error
}

// everyMethod calls each method of the contract; key is alice's.
func everyMethod(key string) []call {
	return []call{
		{"Lookup", func(ctx context.Context, s Store) error { _, err := s.Lookup(ctx, key); return err }},
		{"UserByName", func(ctx context.Context, s Store) error { _, err := s.UserByName(ctx, "alice"); return err }},
		{"TokenFor", func(ctx context.Context, s Store) error { _, err := s.TokenFor(ctx, "alice", false); return err }},
		{"TokenFor with reset", func(ctx context.Context, s Store) error { _, err := s.TokenFor(ctx, "alice", true); return err }},
		{"DeleteTokenByKey", func(ctx context.Context, s Store) error { _, err := s.DeleteTokenByKey(ctx, key); return err }},
		{"SetPassword", func(ctx context.Context, s Store) error { return s.SetPassword(ctx, "alice", "!new") }},
		{"AddUser", func(ctx context.Context, s Store) error {
			return s.AddUser(ctx, store.NewUser{Username: "bob", Password: "!", Active: true})
		}},
		{"DeleteUserToken", func(ctx context.Context, s Store) error { _, err := s.DeleteUserToken(ctx, "alice"); return err }},
		{"ListTokens", func(ctx context.Context, s Store) error { _, err := s.ListTokens(ctx); return err }},
		{"Migrate", func(ctx context.Context, s Store) error { return s.Migrate(ctx) }},
	}
}

// everyKnoxMethod calls each method of store.KnoxAdmin, for a store that
// has them, with arguments that would succeed.
func everyKnoxMethod() []call {
	now := time.Now()
	tok := knoxToken("")
	knox := func(f func(ctx context.Context, s store.KnoxAdmin) error) func(ctx context.Context, s Store) error {
		return func(ctx context.Context, s Store) error { return f(ctx, s.(store.KnoxAdmin)) }
	}
	return []call{
		{"KnoxLookup", knox(func(ctx context.Context, s store.KnoxAdmin) error {
			_, err := s.KnoxLookup(ctx, tok.key, now)
			return err
		})},
		{"KnoxCleanup", knox(func(ctx context.Context, s store.KnoxAdmin) error { _, err := s.KnoxCleanup(ctx, "1", now); return err })},
		{"KnoxRefresh", knox(func(ctx context.Context, s store.KnoxAdmin) error {
			return s.KnoxRefresh(ctx, tok.digest, now.Add(time.Hour))
		})},
		{"KnoxCreate", knox(func(ctx context.Context, s store.KnoxAdmin) error {
			return s.KnoxCreate(ctx, store.KnoxNew{Digest: tok.digest, TokenKey: tok.key, UserID: "1", Created: now}, 0)
		})},
		{"KnoxCreate with a limit", knox(func(ctx context.Context, s store.KnoxAdmin) error {
			return s.KnoxCreate(ctx, store.KnoxNew{Digest: tok.digest, TokenKey: tok.key, UserID: "1", Created: now}, 5)
		})},
		{"KnoxDelete", knox(func(ctx context.Context, s store.KnoxAdmin) error {
			_, err := s.KnoxDelete(ctx, tok.digest)
			return err
		})},
		{"KnoxDeleteUser", knox(func(ctx context.Context, s store.KnoxAdmin) error { _, err := s.KnoxDeleteUser(ctx, "1"); return err })},
		{"SetLastLogin", knox(func(ctx context.Context, s store.KnoxAdmin) error { return s.SetLastLogin(ctx, "1", now) })},
		{"KnoxList", knox(func(ctx context.Context, s store.KnoxAdmin) error { _, err := s.KnoxList(ctx); return err })},
		{"KnoxDeleteByTokenKey", knox(func(ctx context.Context, s store.KnoxAdmin) error {
			_, err := s.KnoxDeleteByTokenKey(ctx, tok.key)
			return err
		})},
		{"KnoxPurgeExpired", knox(func(ctx context.Context, s store.KnoxAdmin) error { _, err := s.KnoxPurgeExpired(ctx, now); return err })},
		{"MigrateKnox", knox(func(ctx context.Context, s store.KnoxAdmin) error { return s.MigrateKnox(ctx) })},
	}
}

// methodsOf is everyMethod, and everyKnoxMethod when s has knox's.
func methodsOf(s Store, key string) []call {
	calls := everyMethod(key)
	if _, ok := s.(store.KnoxAdmin); ok {
		calls = append(calls, everyKnoxMethod()...)
	}
	return calls
}

// testTimeout: a method whose time is up reports store.ErrUnavailable
// wrapping context.DeadlineExceeded, and the store works again with time
// to spare. A store with knox's methods has knox_authtoken too.
func testTimeout(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s := f.Store
	if k, ok := s.(store.KnoxAdmin); ok {
		if err := k.MigrateKnox(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	addUser(t, s, "alice", true)
	key := tokenFor(t, s, "alice")
	for _, c := range methodsOf(s, key) {
		t.Run(c.method, func(t *testing.T) {
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			defer cancel()
			err := c.run(ctx, s)
			if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s with its time up: error = %v, want one wrapping ErrUnavailable and context.DeadlineExceeded", c.method, err)
			}
			if id, err := s.Lookup(context.Background(), key); err != nil || id.Username != "alice" {
				t.Errorf("after the timeout: Lookup = %+v, %v", id, err)
			}
		})
	}
}

// testStopped: on a database that stopped answering, every method reports
// store.ErrUnavailable with the cause it was given.
func testStopped(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	if f.Stopped == nil {
		t.Skip("the store has no way to stop its database in a test")
	}
	s, key := f.Stopped(t)
	for _, c := range methodsOf(s, key) {
		t.Run(c.method, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := c.run(ctx, s)
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("%s on a stopped database: error = %v, want one wrapping ErrUnavailable", c.method, err)
			}
			if !hasCause(err) {
				t.Errorf("%s on a stopped database: error %v (%T) wraps no cause besides the sentinel", c.method, err, err)
			}
		})
	}
}

// hasCause tells whether err wraps an error that is not one of the
// store's sentinels and wraps nothing itself: the cause of the failure.
func hasCause(err error) bool {
	switch e := err.(type) {
	case nil:
		return false
	case interface{ Unwrap() error }:
		if inner := e.Unwrap(); inner != nil {
			return hasCause(inner)
		}
		return true
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			if hasCause(inner) {
				return true
			}
		}
		return false
	}
	for _, sentinel := range []error{store.ErrUnavailable, store.ErrNotFound, store.ErrNoUser, store.ErrUserExists, store.ErrTokenLimit} {
		if err == sentinel {
			return false
		}
	}
	return true
}
