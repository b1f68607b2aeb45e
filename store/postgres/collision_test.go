package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// A new key that collides with another real user's existing token never
// takes that token over: the create fails (or, were it to retry, ends with
// a key of its own), and the other user's row is exactly as it was. Unlike
// an insert by hand with no such user, the colliding insert here would pass
// the foreign key, so only the insert itself (no upsert) stops a takeover.
func TestCreateTokenNeverTakesOverACollidingKey(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	addUser(t, s, "alice", true)
	addUser(t, s, "bob", true)
	aliceKey := createToken(t, s, "alice")
	conn := admin(t, testDSN(t))
	type row struct {
		key     string
		created time.Time
		userID  int64
	}
	rowOf := func(username string) (row, bool) {
		t.Helper()
		var r row
		err := conn.QueryRow(ctx, `SELECT t."key", t."created", t."user_id" FROM `+s.db.authToken+` t JOIN `+s.db.authUser+` u ON u."id" = t."user_id" WHERE u."username" = $1`, username).
			Scan(&r.key, &r.created, &r.userID)
		if err != nil {
			return row{}, false
		}
		return r, true
	}
	before, ok := rowOf("alice")
	if !ok {
		t.Fatal("alice has no token row")
	}

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
