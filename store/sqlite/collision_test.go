package sqlite

import (
	"context"
	"database/sql"
	"testing"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// A new key that collides with another user's existing token never takes
// that token over: the create fails (or, were it to retry, ends with a key
// of its own), and the other user's row is exactly as it was.
func TestCreateTokenNeverTakesOverACollidingKey(t *testing.T) {
	s, path := openStore(t)
	ctx := context.Background()
	for _, u := range []string{"alice", "bob"} {
		if err := s.AddUser(ctx, store.NewUser{Username: u, Password: "!", Active: true}); err != nil {
			t.Fatal(err)
		}
	}
	aliceKey, err := s.CreateToken(ctx, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	type row struct{ key, created, userID string }
	rowOf := func(username string) (row, bool) {
		t.Helper()
		var r row
		err := raw.QueryRow(`SELECT t."key", CAST(t."created" AS TEXT), CAST(t."user_id" AS TEXT) FROM "authtoken_token" t JOIN "auth_user" u ON u."id" = t."user_id" WHERE u."username" = ?`, username).
			Scan(&r.key, &r.created, &r.userID)
		if err == sql.ErrNoRows {
			return row{}, false
		}
		if err != nil {
			t.Fatal(err)
		}
		return r, true
	}
	before, _ := rowOf("alice")

	calls := 0
	generateKey = func() string {
		calls++
		if calls == 1 {
			return aliceKey
		}
		return store.GenerateKey()
	}
	t.Cleanup(func() { generateKey = store.GenerateKey })

	for _, reset := range []bool{false, true} {
		calls = 0
		key, err := s.CreateToken(ctx, "bob", reset)
		if calls == 0 {
			t.Fatal("CreateToken made no key: the test no longer injects the collision")
		}
		switch {
		case err != nil:
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
		if after, ok := rowOf("alice"); !ok || after != before {
			t.Errorf("reset=%v: alice's token row is %+v (there: %v), was %+v", reset, after, ok, before)
		}
	}
}
