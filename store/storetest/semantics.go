package storetest

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// addUser adds an active or inactive user with an unusable password.
func addUser(t *testing.T, s Store, username string, active bool) {
	t.Helper()
	if err := s.AddUser(context.Background(), store.NewUser{Username: username, Password: "!unusable", Active: active}); err != nil {
		t.Fatalf("AddUser(%s): %v", username, err)
	}
}

// tokenFor is the user's token, made if need be.
func tokenFor(t *testing.T, s Store, username string) string {
	t.Helper()
	key, err := s.TokenFor(context.Background(), username, false)
	if err != nil {
		t.Fatalf("TokenFor(%s): %v", username, err)
	}
	return key
}

// wantErr fails the test unless err is nil when want is, and wraps want
// when it is not.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) || (want == nil && err != nil) {
		t.Fatalf("%s error = %v, want %v", what, err, want)
	}
}

func testLookup(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s, ctx := f.Store, context.Background()
	addUser(t, s, "john", true)
	addUser(t, s, "gone", false)
	johnKey, goneKey := tokenFor(t, s, "john"), tokenFor(t, s, "gone")
	tests := []struct {
		name    string
		key     string
		want    store.Identity
		wantErr error
	}{
		{"token of an active user", johnKey, store.Identity{ID: f.UserID(t, "john"), Username: "john", Active: true}, nil},
		{"token of an inactive user", goneKey, store.Identity{ID: f.UserID(t, "gone"), Username: "gone", Active: false}, nil},
		{"unknown key", strings.Repeat("0", 40), store.Identity{}, store.ErrNotFound},
		{"key differing only in case", strings.ToUpper(johnKey), store.Identity{}, store.ErrNotFound},
		{"empty key", "", store.Identity{}, store.ErrNotFound},
	}
	listed, err := s.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	created := make(map[string]time.Time)
	for _, tok := range listed {
		created[tok.Key] = tok.Created
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Lookup(ctx, tt.key)
			wantErr(t, "Lookup", err, tt.wantErr)
			// Created is authtoken_token.created, as ListTokens shows it.
			if tt.wantErr == nil {
				if !got.Created.Equal(created[tt.key]) || got.Created.Location() != time.UTC {
					t.Errorf("Lookup: Created %v, want authtoken_token.created %v, in UTC", got.Created, created[tt.key])
				}
				if d := time.Since(got.Created); d < -time.Minute || d > time.Minute {
					t.Errorf("Lookup: Created %v is not about now", got.Created)
				}
			}
			got.Created = time.Time{}
			if got != tt.want {
				t.Errorf("Lookup = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func testUserByName(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s, ctx := f.Store, context.Background()
	const encoded = "pbkdf2_sha256$1000000$salt$hash="
	if err := s.AddUser(ctx, store.NewUser{Username: "john", Password: encoded, Active: true}); err != nil {
		t.Fatal(err)
	}
	addUser(t, s, "gone", false)
	tests := []struct {
		name, username string
		want           store.User
		wantErr        error
	}{
		{"active user", "john", store.User{ID: f.UserID(t, "john"), Username: "john", Password: encoded, Active: true}, nil},
		{"inactive user", "gone", store.User{ID: f.UserID(t, "gone"), Username: "gone", Password: "!unusable", Active: false}, nil},
		{"username differing in case", "John", store.User{}, store.ErrNoUser},
		{"username with a trailing space", "john ", store.User{}, store.ErrNoUser},
		{"unknown user", "nobody", store.User{}, store.ErrNoUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.UserByName(ctx, tt.username)
			wantErr(t, "UserByName", err, tt.wantErr)
			if got != tt.want {
				t.Errorf("UserByName = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func testTokenFor(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s, ctx := f.Store, context.Background()
	addUser(t, s, "john", true)
	first := tokenFor(t, s, "john")
	if len(first) != 40 || strings.Trim(first, "0123456789abcdef") != "" {
		t.Fatalf("key %q is not 40 lowercase hex characters", first)
	}
	if id, err := s.Lookup(ctx, first); err != nil || id.Username != "john" {
		t.Fatalf("new key: Lookup = %+v, %v", id, err)
	}

	t.Run("existing token is returned unchanged", func(t *testing.T) {
		if again := tokenFor(t, s, "john"); again != first {
			t.Errorf("TokenFor = %s, want the existing %s", again, first)
		}
	})
	t.Run("reset replaces the token", func(t *testing.T) {
		reset, err := s.TokenFor(ctx, "john", true)
		if err != nil {
			t.Fatal(err)
		}
		if reset == first {
			t.Fatal("reset kept the old key")
		}
		if _, err := s.Lookup(ctx, first); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("old key after reset: Lookup error = %v, want ErrNotFound", err)
		}
		if id, err := s.Lookup(ctx, reset); err != nil || id.Username != "john" {
			t.Errorf("new key after reset: Lookup = %+v, %v", id, err)
		}
		if again := tokenFor(t, s, "john"); again != reset {
			t.Errorf("TokenFor after reset = %s, want the new %s", again, reset)
		}
	})
	t.Run("reset of a user without a token makes one", func(t *testing.T) {
		addUser(t, s, "amy", true)
		key, err := s.TokenFor(ctx, "amy", true)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := s.Lookup(ctx, key); err != nil || id.Username != "amy" {
			t.Errorf("Lookup = %+v, %v", id, err)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		for _, reset := range []bool{false, true} {
			if _, err := s.TokenFor(ctx, "nobody", reset); !errors.Is(err, store.ErrNoUser) {
				t.Errorf("TokenFor(nobody, reset=%v) error = %v, want ErrNoUser", reset, err)
			}
		}
	})
}

// A new key that collides with another real user's existing token never
// takes that token over: the create fails (or, were it to retry, ends with
// a key of its own), and the other user's row is exactly as it was. The
// colliding insert would pass the foreign key, so only the insert itself
// (no upsert) stops a takeover. A failed create is the store's failure
// (ErrUnavailable, with its cause), as any other.
func testCollision(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s, ctx := f.Store, context.Background()
	addUser(t, s, "alice", true)
	addUser(t, s, "bob", true)
	aliceKey := tokenFor(t, s, "alice")
	before, ok := f.TokenRow(t, "alice")
	if !ok {
		t.Fatal("alice has no token row")
	}

	calls := 0
	f.SetGenerateKey(t, func() string {
		calls++
		if calls == 1 {
			return aliceKey
		}
		return store.GenerateKey()
	})

	for _, reset := range []bool{false, true} {
		calls = 0
		key, err := s.TokenFor(ctx, "bob", reset)
		if calls == 0 {
			t.Fatal("TokenFor made no key: the test no longer injects the collision")
		}
		switch {
		case err != nil:
			// The store could not answer: neither a refusal nor a key.
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("reset=%v: the colliding create failed with %v, want an error wrapping ErrUnavailable", reset, err)
			}
			t.Logf("reset=%v: the colliding create failed: %v", reset, err)
		case key == aliceKey:
			t.Errorf("reset=%v: bob was given alice's key", reset)
		default:
			if id, err := s.Lookup(ctx, key); err != nil || id.Username != "bob" {
				t.Errorf("reset=%v: bob's new key gives %+v, %v", reset, id, err)
			}
		}
		if id, err := s.Lookup(ctx, aliceKey); err != nil || id.Username != "alice" {
			t.Errorf("reset=%v: alice's key now gives %+v, %v", reset, id, err)
		}
		if after, ok := f.TokenRow(t, "alice"); !ok || after != before {
			t.Errorf("reset=%v: alice's token row is %+v (there: %v), was %+v", reset, after, ok, before)
		}
	}
}

func testDeleteTokenByKey(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s, ctx := f.Store, context.Background()
	addUser(t, s, "john", true)
	addUser(t, s, "amy", true)
	john, amy := tokenFor(t, s, "john"), tokenFor(t, s, "amy")
	// Each case stands alone (-run one of them): "already deleted" deletes
	// first, whatever ran before it.
	tests := []struct {
		name, key   string
		deleteFirst bool
		want        bool
	}{
		{"existing key", john, false, true},
		{"key already deleted", john, true, false},
		{"key differing only in case", strings.ToUpper(amy), false, false},
		{"unknown key", strings.Repeat("0", 40), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.deleteFirst {
				if _, err := s.DeleteTokenByKey(ctx, tt.key); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.DeleteTokenByKey(ctx, tt.key)
			wantErr(t, "DeleteTokenByKey", err, nil)
			if got != tt.want {
				t.Errorf("DeleteTokenByKey = %v, want %v", got, tt.want)
			}
			if _, err := s.Lookup(ctx, tt.key); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("after the delete: Lookup error = %v, want ErrNotFound", err)
			}
			if id, err := s.Lookup(ctx, amy); err != nil || id.Username != "amy" {
				t.Errorf("another user's key after the delete: Lookup = %+v, %v", id, err)
			}
			if _, ok := f.TokenRow(t, "john"); tt.key == john && ok {
				t.Error("john's token row is still there")
			}
		})
	}
}

func testSetPassword(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s, ctx := f.Store, context.Background()
	addUser(t, s, "john", true)
	addUser(t, s, "amy", true)
	tests := []struct {
		name, username, encoded string
		wantErr                 error
	}{
		{"existing user", "john", "pbkdf2_sha256$1000000$new$hash=", nil},
		{"username differing in case", "John", "pbkdf2_sha256$1000000$other$hash=", store.ErrNoUser},
		{"unknown user", "nobody", "pbkdf2_sha256$1000000$new$hash=", store.ErrNoUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.SetPassword(ctx, tt.username, tt.encoded)
			wantErr(t, "SetPassword", err, tt.wantErr)
			if err != nil {
				return
			}
			if got := f.UserRow(t, tt.username)["password"]; got != tt.encoded {
				t.Errorf("password = %q, want %q", got, tt.encoded)
			}
		})
	}
	if got := f.UserRow(t, "amy")["password"]; got != "!unusable" {
		t.Errorf("another user's password = %q, want it unchanged", got)
	}
}

func testAddUser(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s, ctx := f.Store, context.Background()
	const encoded = "pbkdf2_sha256$1000000$salt$hash="
	if err := s.AddUser(ctx, store.NewUser{Username: "john", Password: encoded, Active: true}); err != nil {
		t.Fatal(err)
	}
	addUser(t, s, "sleepy", false)

	// As Django's UserManager.create_user leaves a row.
	for username, want := range map[string]map[string]string{
		"john":   {"password": encoded, "last_login": "NULL", "is_superuser": "false", "first_name": "", "last_name": "", "email": "", "is_staff": "false", "is_active": "true"},
		"sleepy": {"password": "!unusable", "last_login": "NULL", "is_superuser": "false", "first_name": "", "last_name": "", "email": "", "is_staff": "false", "is_active": "false"},
	} {
		row := f.UserRow(t, username)
		joined, err := time.Parse(time.RFC3339Nano, row["date_joined"])
		if err != nil {
			t.Errorf("%s: date_joined %q: %v", username, row["date_joined"], err)
		} else if d := time.Since(joined); d < -time.Minute || d > time.Minute {
			t.Errorf("%s: date_joined %v is not now", username, joined)
		}
		delete(row, "date_joined")
		if !reflect.DeepEqual(row, want) {
			t.Errorf("%s: row = %v, want %v", username, row, want)
		}
	}

	tests := []struct {
		name    string
		user    store.NewUser
		wantErr error
	}{
		{"existing username", store.NewUser{Username: "john", Password: "!x", Active: true}, store.ErrUserExists},
		{"username differing in case is another user", store.NewUser{Username: "John", Password: "!x", Active: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.AddUser(ctx, tt.user)
			wantErr(t, "AddUser", err, tt.wantErr)
		})
	}
	if got := f.UserRow(t, "john")["password"]; got != encoded {
		t.Errorf("after a refused AddUser, john's password = %q, want %q", got, encoded)
	}
}

func testDeleteUserToken(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s, ctx := f.Store, context.Background()
	addUser(t, s, "john", true)
	addUser(t, s, "notoken", true)
	addUser(t, s, "amy", true)
	amy := tokenFor(t, s, "amy")

	// Each case makes the state it needs, so that it passes run alone.
	tests := []struct {
		name     string
		username string
		setup    func(t *testing.T) (key string) // the user's key, if any
		want     bool
		wantErr  error
	}{
		{"user with a token", "john", func(t *testing.T) string { return tokenFor(t, s, "john") }, true, nil},
		{"user whose token is gone", "john", func(t *testing.T) string {
			key := tokenFor(t, s, "john")
			if _, err := s.DeleteUserToken(ctx, "john"); err != nil {
				t.Fatal(err)
			}
			return key
		}, false, nil},
		{"user who never had a token", "notoken", func(*testing.T) string { return "" }, false, nil},
		{"username differing in case", "John", func(*testing.T) string { return "" }, false, store.ErrNoUser},
		{"unknown user", "nobody", func(*testing.T) string { return "" }, false, store.ErrNoUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.setup(t)
			got, err := s.DeleteUserToken(ctx, tt.username)
			wantErr(t, "DeleteUserToken", err, tt.wantErr)
			if got != tt.want {
				t.Errorf("DeleteUserToken = %v, want %v", got, tt.want)
			}
			if id, err := s.Lookup(ctx, amy); err != nil || id.Username != "amy" {
				t.Errorf("another user's key: Lookup = %+v, %v", id, err)
			}
			if key == "" {
				return
			}
			if _, err := s.Lookup(ctx, key); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("deleted key: Lookup error = %v, want ErrNotFound", err)
			}
		})
	}
}

func testListTokens(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s, ctx := f.Store, context.Background()
	if got, err := s.ListTokens(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty store: ListTokens = %v, %v", got, err)
	}
	keys := map[string]string{}
	for _, u := range []string{"zed", "amy", "bob", "notoken"} {
		addUser(t, s, u, true)
		if u != "notoken" {
			keys[u] = tokenFor(t, s, u)
		}
	}
	before := time.Now()
	got, err := s.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tok := range got {
		names = append(names, tok.Username)
		if tok.Key != keys[tok.Username] {
			t.Errorf("%s: key %s, want %s", tok.Username, tok.Key, keys[tok.Username])
		}
		if d := before.Sub(tok.Created); d < -time.Minute || d > time.Minute {
			t.Errorf("%s: created %v, not about now (%v)", tok.Username, tok.Created, before)
		}
	}
	if want := []string{"amy", "bob", "zed"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ListTokens order = %v, want %v", names, want)
	}
}
