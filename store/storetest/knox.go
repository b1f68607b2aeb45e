package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenauth/caddy-tokenauth/internal/knox"
	"github.com/tokenauth/caddy-tokenauth/store"
)

// KnoxStore is a store under test that has knox's tables too.
type KnoxStore interface {
	Store
	store.KnoxAdmin
}

// RunKnox runs the knox part of the suite (store.Knox, store.KnoxAdmin),
// calling open for a new fixture in every test; the fixture's store must
// implement store.KnoxAdmin, and each test makes knox_authtoken with
// MigrateKnox. The store's timeouts and outages are covered by Run, whose
// outage tests call knox's methods too.
func RunKnox(t *testing.T, open func(t *testing.T) *Fixture) {
	t.Run("KnoxLookupReturnsTheCandidatesWithTheirUsers", func(t *testing.T) { testKnoxLookup(t, open) })
	t.Run("KnoxLookupWritesNothing", func(t *testing.T) { testKnoxLookupWritesNothing(t, open) })
	t.Run("KnoxKeysAreNeverStored", func(t *testing.T) { testKnoxKeysNeverStored(t, open) })
	t.Run("KnoxCleanupDeletesOnlyTheUsersExpiredTokens", func(t *testing.T) { testKnoxCleanup(t, open) })
	t.Run("KnoxRefreshMovesTheExpiry", func(t *testing.T) { testKnoxRefresh(t, open) })
	t.Run("KnoxCreateCountsLiveAndNeverExpiringTokensAgainstTheLimit", func(t *testing.T) { testKnoxLimit(t, open) })
	t.Run("KnoxConcurrentCreatesNeverExceedTheLimit", func(t *testing.T) { testKnoxConcurrentLimit(t, open) })
	t.Run("KnoxCreateRefusesWhatKnoxCouldNotWrite", func(t *testing.T) { testKnoxCreateRefuses(t, open) })
	t.Run("KnoxDeletes", func(t *testing.T) { testKnoxDeletes(t, open) })
	t.Run("KnoxPurgeExpired", func(t *testing.T) { testKnoxPurge(t, open) })
	t.Run("KnoxListOrderedByUsernameThenCreated", func(t *testing.T) { testKnoxList(t, open) })
	t.Run("KnoxSetLastLogin", func(t *testing.T) { testSetLastLogin(t, open) })
	t.Run("KnoxTimestampsRoundTripToTheMicrosecond", func(t *testing.T) { testKnoxTimes(t, open) })
	t.Run("KnoxUserIDsThatAreNotDecimalNameNoUser", func(t *testing.T) { testKnoxBadUserIDs(t, open) })
	t.Run("MigrateKnoxMakesKnoxsTableAndIsIdempotent", func(t *testing.T) { testMigrateKnox(t, open) })
}

// openKnox is the fixture's store, with knox_authtoken made.
func openKnox(t *testing.T, open func(*testing.T) *Fixture) (*Fixture, KnoxStore) {
	t.Helper()
	f := open(t)
	s, ok := f.Store.(KnoxStore)
	if !ok {
		t.Fatalf("%T does not implement store.KnoxAdmin", f.Store)
	}
	if err := s.MigrateKnox(context.Background()); err != nil {
		t.Fatalf("MigrateKnox: %v", err)
	}
	return f, s
}

// knoxTok is a knox key and what knox_authtoken holds of it.
type knoxTok struct {
	token, key, digest string
}

// knoxToken makes a key as knox does.
func knoxToken(prefix string) knoxTok {
	tok := knox.Generate(prefix)
	return knoxTok{token: tok, key: knox.TokenKey(tok), digest: knox.Digest(tok)}
}

// knoxNow is now, in UTC, to the microsecond: what a store gives back.
func knoxNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// createKnox inserts a new token for the user without a limit.
func createKnox(t *testing.T, s KnoxStore, userID string, created, expiry time.Time) knoxTok {
	t.Helper()
	tok := knoxToken("")
	if err := s.KnoxCreate(context.Background(), store.KnoxNew{Digest: tok.digest, TokenKey: tok.key, UserID: userID, Created: created, Expiry: expiry}, 0); err != nil {
		t.Fatalf("KnoxCreate: %v", err)
	}
	return tok
}

// knoxDigests is the digests of every knox token, sorted, read with
// KnoxLookup of each listed token_key.
func knoxDigests(t *testing.T, s KnoxStore) []string {
	t.Helper()
	ctx := context.Background()
	list, err := s.KnoxList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	seen := make(map[string]bool)
	for _, tok := range list {
		if seen[tok.TokenKey] {
			continue
		}
		seen[tok.TokenKey] = true
		cands, err := s.KnoxLookup(ctx, tok.TokenKey, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cands {
			out = append(out, c.Digest)
		}
	}
	slices.Sort(out)
	return out
}

// sorted returns the digests of toks, sorted.
func sorted(toks ...knoxTok) []string {
	var out []string
	for _, tok := range toks {
		out = append(out, tok.digest)
	}
	slices.Sort(out)
	return out
}

func testKnoxLookup(t *testing.T, open func(*testing.T) *Fixture) {
	f, s := openKnox(t, open)
	ctx := context.Background()
	addUser(t, s, "alice", true)
	addUser(t, s, "bob", false)
	alice, bob := f.UserID(t, "alice"), f.UserID(t, "bob")
	now := knoxNow()
	live := createKnox(t, s, alice, now.Add(-time.Hour), now.Add(time.Hour))
	never := createKnox(t, s, alice, now.Add(-time.Hour), time.Time{})
	expired := createKnox(t, s, alice, now.Add(-2*time.Hour), now.Add(-time.Minute))
	bobs := createKnox(t, s, bob, now.Add(-time.Hour), now.Add(time.Hour))
	// Two tokens whose first 15 characters are the same: both are
	// candidates, each with its user.
	shared := knoxToken("")
	shared.token = shared.key + strings.Repeat("0", 64-len(shared.key))
	shared.digest = knox.Digest(shared.token)
	other := knoxTok{token: shared.key + strings.Repeat("1", 64-len(shared.key)), key: shared.key}
	other.digest = knox.Digest(other.token)
	for _, c := range []struct {
		tok  knoxTok
		user string
	}{{shared, alice}, {other, bob}} {
		if err := s.KnoxCreate(ctx, store.KnoxNew{Digest: c.tok.digest, TokenKey: c.tok.key, UserID: c.user, Created: now, Expiry: now.Add(time.Hour)}, 0); err != nil {
			t.Fatal(err)
		}
	}

	aliceID := store.Identity{ID: alice, Username: "alice", Active: true}
	bobID := store.Identity{ID: bob, Username: "bob", Active: false}
	tests := []struct {
		name     string
		tokenKey string
		now      time.Time
		want     []store.KnoxCandidate
	}{
		{"live token of a user with an expired one", live.key, now, []store.KnoxCandidate{
			{Digest: live.digest, User: aliceID, Created: now.Add(-time.Hour), Expiry: now.Add(time.Hour), UserHasExpired: true}}},
		{"token that never expires", never.key, now, []store.KnoxCandidate{
			{Digest: never.digest, User: aliceID, Created: now.Add(-time.Hour), UserHasExpired: true}}},
		{"expired token", expired.key, now, []store.KnoxCandidate{
			{Digest: expired.digest, User: aliceID, Created: now.Add(-2 * time.Hour), Expiry: now.Add(-time.Minute), UserHasExpired: true}}},
		{"before the expired token expired", live.key, now.Add(-2 * time.Minute), []store.KnoxCandidate{
			{Digest: live.digest, User: aliceID, Created: now.Add(-time.Hour), Expiry: now.Add(time.Hour)}}},
		{"expiring exactly now is not expired", live.key, now.Add(-time.Minute), []store.KnoxCandidate{
			{Digest: live.digest, User: aliceID, Created: now.Add(-time.Hour), Expiry: now.Add(time.Hour)}}},
		{"inactive user without expired tokens", bobs.key, now, []store.KnoxCandidate{
			{Digest: bobs.digest, User: bobID, Created: now.Add(-time.Hour), Expiry: now.Add(time.Hour)}}},
		{"two candidates, two users", shared.key, now, []store.KnoxCandidate{
			{Digest: shared.digest, User: aliceID, Created: now, Expiry: now.Add(time.Hour), UserHasExpired: true},
			{Digest: other.digest, User: bobID, Created: now, Expiry: now.Add(time.Hour)}}},
		{"unknown token_key", strings.Repeat("0", 15), now, nil},
		{"token_key differing only in case", strings.ToUpper(live.key), now, nil},
		{"a prefix of a token_key", live.key[:14], now, nil},
		{"empty token_key", "", now, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "token_key differing only in case" && strings.ToUpper(live.key) == live.key {
				t.Skip("the token_key has no letter")
			}
			got, err := s.KnoxLookup(ctx, tt.tokenKey, tt.now)
			if err != nil {
				t.Fatalf("KnoxLookup: %v", err)
			}
			slices.SortFunc(got, func(a, b store.KnoxCandidate) int { return strings.Compare(a.User.Username, b.User.Username) })
			for _, c := range got {
				if c.Created.Location() != time.UTC || (!c.Expiry.IsZero() && c.Expiry.Location() != time.UTC) {
					t.Errorf("candidate %s…: times %v, %v not in UTC", c.Digest[:8], c.Created, c.Expiry)
				}
			}
			if !equalCandidates(got, tt.want) {
				t.Errorf("KnoxLookup(%q) =\n%+v\nwant\n%+v", tt.tokenKey, got, tt.want)
			}
		})
	}
}

// equalCandidates compares candidates with time.Equal.
func equalCandidates(got, want []store.KnoxCandidate) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Digest != w.Digest || g.User != w.User || !g.Created.Equal(w.Created) || !g.Expiry.Equal(w.Expiry) ||
			g.Expiry.IsZero() != w.Expiry.IsZero() || g.UserHasExpired != w.UserHasExpired {
			return false
		}
	}
	return true
}

// KnoxLookup reads: an expired token, and the user's others, are still
// there after it (knox's cleanup is KnoxCleanup's).
func testKnoxLookupWritesNothing(t *testing.T, open func(*testing.T) *Fixture) {
	f, s := openKnox(t, open)
	addUser(t, s, "alice", true)
	alice := f.UserID(t, "alice")
	now := knoxNow()
	expired := createKnox(t, s, alice, now.Add(-2*time.Hour), now.Add(-time.Hour))
	other := createKnox(t, s, alice, now.Add(-2*time.Hour), now.Add(-time.Hour))
	for range 2 {
		got, err := s.KnoxLookup(context.Background(), expired.key, now)
		if err != nil || len(got) != 1 || !got[0].UserHasExpired {
			t.Fatalf("KnoxLookup of an expired token = %+v, %v", got, err)
		}
	}
	if got, want := knoxDigests(t, s), sorted(expired, other); !slices.Equal(got, want) {
		t.Errorf("after KnoxLookup the tokens are %v, want both expired ones %v", got, want)
	}
}

// What the store is given is all it keeps: no key, and not the part of
// it after token_key, is anywhere in the database.
func testKnoxKeysNeverStored(t *testing.T, open func(*testing.T) *Fixture) {
	f, s := openKnox(t, open)
	if f.Dump == nil {
		t.Skip("the store cannot dump its database")
	}
	addUser(t, s, "alice", true)
	alice := f.UserID(t, "alice")
	now := knoxNow()
	var toks []knoxTok
	for _, prefix := range []string{"", "myapp_", "0123456789"} {
		tok := knoxToken(prefix)
		if err := s.KnoxCreate(context.Background(), store.KnoxNew{Digest: tok.digest, TokenKey: tok.key, UserID: alice, Created: now, Expiry: now.Add(time.Hour)}, 0); err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	dump := f.Dump(t)
	for _, tok := range toks {
		if !strings.Contains(dump, tok.digest) {
			t.Fatalf("the dump does not show the digest %s…: it does not read the table", tok.digest[:16])
		}
		for _, secret := range []string{tok.token, tok.token[len(tok.key):], tok.token[len(tok.key) : len(tok.key)+16]} {
			if strings.Contains(dump, secret) {
				t.Errorf("the database holds %q of the key %s…", secret, tok.key)
			}
		}
	}
}

func testKnoxCleanup(t *testing.T, open func(*testing.T) *Fixture) {
	f, s := openKnox(t, open)
	ctx := context.Background()
	addUser(t, s, "alice", true)
	addUser(t, s, "bob", true)
	alice, bob := f.UserID(t, "alice"), f.UserID(t, "bob")
	now := knoxNow()
	createKnox(t, s, alice, now.Add(-3*time.Hour), now.Add(-time.Hour))
	createKnox(t, s, alice, now.Add(-3*time.Hour), now.Add(-time.Microsecond))
	atNow := createKnox(t, s, alice, now.Add(-3*time.Hour), now)
	live := createKnox(t, s, alice, now.Add(-time.Hour), now.Add(time.Hour))
	never := createKnox(t, s, alice, now.Add(-time.Hour), time.Time{})
	bobExpired := createKnox(t, s, bob, now.Add(-3*time.Hour), now.Add(-time.Hour))

	if n, err := s.KnoxCleanup(ctx, alice, now); err != nil || n != 2 {
		t.Fatalf("KnoxCleanup(alice, now) = %d, %v; want 2", n, err)
	}
	if got, want := knoxDigests(t, s), sorted(atNow, live, never, bobExpired); !slices.Equal(got, want) {
		t.Errorf("after KnoxCleanup(alice) the tokens are %v, want %v (alice's expiring now, live and never-expiring, bob's expired)", got, want)
	}
	if n, err := s.KnoxCleanup(ctx, alice, now); err != nil || n != 0 {
		t.Errorf("KnoxCleanup again = %d, %v; want 0", n, err)
	}
	if n, err := s.KnoxCleanup(ctx, "999999", now); err != nil || n != 0 {
		t.Errorf("KnoxCleanup of an unknown user = %d, %v; want 0, nil", n, err)
	}

	// At a whole second, whose text on SQLite has no fraction: expiring
	// then is not expired then, and is a microsecond later.
	whole := now.Truncate(time.Second).Add(-time.Second)
	createKnox(t, s, alice, whole.Add(-time.Hour), whole)
	if n, err := s.KnoxCleanup(ctx, alice, whole); err != nil || n != 0 {
		t.Errorf("KnoxCleanup at the expiry, a whole second = %d, %v; want 0", n, err)
	}
	if n, err := s.KnoxCleanup(ctx, alice, whole.Add(time.Microsecond)); err != nil || n != 1 {
		t.Errorf("KnoxCleanup a microsecond after the expiry, a whole second = %d, %v; want 1", n, err)
	}
}

func testKnoxRefresh(t *testing.T, open func(*testing.T) *Fixture) {
	f, s := openKnox(t, open)
	ctx := context.Background()
	addUser(t, s, "alice", true)
	alice := f.UserID(t, "alice")
	now := knoxNow()
	tok := createKnox(t, s, alice, now, now.Add(time.Hour))
	other := createKnox(t, s, alice, now, now.Add(time.Hour))
	later := now.Add(10*time.Hour + 123456*time.Microsecond)
	if err := s.KnoxRefresh(ctx, tok.digest, later); err != nil {
		t.Fatal(err)
	}
	expiry := func(tok knoxTok) time.Time {
		t.Helper()
		got, err := s.KnoxLookup(ctx, tok.key, now)
		if err != nil || len(got) != 1 {
			t.Fatalf("KnoxLookup = %+v, %v", got, err)
		}
		return got[0].Expiry
	}
	if got := expiry(tok); !got.Equal(later) {
		t.Errorf("expiry after KnoxRefresh = %v, want %v", got, later)
	}
	if got := expiry(other); !got.Equal(now.Add(time.Hour)) {
		t.Errorf("another token's expiry = %v, want it unchanged", got)
	}
	if err := s.KnoxRefresh(ctx, knoxToken("").digest, later); err != nil {
		t.Errorf("KnoxRefresh of a token gone: %v, want nil", err)
	}
}

func testKnoxLimit(t *testing.T, open func(*testing.T) *Fixture) {
	f, s := openKnox(t, open)
	ctx := context.Background()
	addUser(t, s, "alice", true)
	addUser(t, s, "bob", true)
	alice, bob := f.UserID(t, "alice"), f.UserID(t, "bob")
	now := knoxNow()
	// Do not count: expired, and expiring exactly at the new token's
	// created. Count: never expiring.
	createKnox(t, s, alice, now.Add(-3*time.Hour), now.Add(-time.Hour))
	createKnox(t, s, alice, now.Add(-3*time.Hour), now)
	createKnox(t, s, alice, now.Add(-time.Hour), time.Time{})
	// Another user's tokens do not count.
	for range 3 {
		createKnox(t, s, bob, now, now.Add(time.Hour))
	}
	create := func(limit int) (knoxTok, error) {
		tok := knoxToken("")
		return tok, s.KnoxCreate(ctx, store.KnoxNew{Digest: tok.digest, TokenKey: tok.key, UserID: alice, Created: now, Expiry: now.Add(time.Hour)}, limit)
	}
	if _, err := create(1); !errors.Is(err, store.ErrTokenLimit) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("KnoxCreate with limit 1 over a never-expiring token: %v, want ErrTokenLimit (and not ErrUnavailable)", err)
	}
	tok, err := create(2)
	if err != nil {
		t.Fatalf("KnoxCreate with limit 2 over one live token: %v", err)
	}
	refused, err := create(2)
	if !errors.Is(err, store.ErrTokenLimit) {
		t.Fatalf("KnoxCreate with limit 2 over two live tokens: %v, want ErrTokenLimit", err)
	}
	if got, err := s.KnoxLookup(ctx, refused.key, now); err != nil || len(got) != 0 {
		t.Errorf("a refused create inserted %+v, %v", got, err)
	}
	if got, err := s.KnoxLookup(ctx, tok.key, now); err != nil || len(got) != 1 {
		t.Errorf("the created token: KnoxLookup = %+v, %v", got, err)
	}
	if _, err := create(0); err != nil {
		t.Errorf("KnoxCreate without a limit: %v", err)
	}
	if _, err := create(-1); err != nil {
		t.Errorf("KnoxCreate with a negative limit (none): %v", err)
	}
	tok = knoxToken("")
	err = s.KnoxCreate(ctx, store.KnoxNew{Digest: tok.digest, TokenKey: tok.key, UserID: "999999", Created: now, Expiry: now.Add(time.Hour)}, 1)
	if !errors.Is(err, store.ErrNoUser) {
		t.Errorf("KnoxCreate for an unknown user: %v, want ErrNoUser", err)
	}
}

// Logins racing for the last places: exactly limit of them get one, in
// each of a few rounds (a race that a missing lock loses only now and
// then still shows).
func testKnoxConcurrentLimit(t *testing.T, open func(*testing.T) *Fixture) {
	f, s := openKnox(t, open)
	ctx := context.Background()
	now := knoxNow()
	const limit, logins, rounds = 3, 12, 4
	for round := range rounds {
		name := "user" + strings.Repeat("x", round)
		addUser(t, s, name, true)
		uid := f.UserID(t, name)
		var (
			wg               sync.WaitGroup
			mu               sync.Mutex
			created, refused int
			failures         []error
			start            = make(chan struct{})
		)
		for range logins {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok := knoxToken("")
				<-start
				err := s.KnoxCreate(ctx, store.KnoxNew{Digest: tok.digest, TokenKey: tok.key, UserID: uid, Created: now, Expiry: now.Add(time.Hour)}, limit)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					created++
				case errors.Is(err, store.ErrTokenLimit):
					refused++
				default:
					failures = append(failures, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(failures) > 0 {
			t.Fatalf("round %d: concurrent creates failed: %v", round+1, failures)
		}
		if created != limit || refused != logins-limit {
			t.Fatalf("round %d: %d concurrent creates with limit %d: %d created, %d refused; want %d and %d", round+1, logins, limit, created, refused, limit, logins-limit)
		}
	}
	if got := knoxDigests(t, s); len(got) != limit*rounds {
		t.Errorf("the users hold %d tokens, want %d", len(got), limit*rounds)
	}
}

func testKnoxCreateRefuses(t *testing.T, open func(*testing.T) *Fixture) {
	f, s := openKnox(t, open)
	ctx := context.Background()
	addUser(t, s, "alice", true)
	alice := f.UserID(t, "alice")
	now := knoxNow()
	existing := createKnox(t, s, alice, now, now.Add(time.Hour))
	tok := knoxToken("")
	good := store.KnoxNew{Digest: tok.digest, TokenKey: tok.key, UserID: alice, Created: now, Expiry: now.Add(time.Hour)}
	for name, mutate := range map[string]func(*store.KnoxNew){
		"token_key of 26 characters": func(r *store.KnoxNew) { r.TokenKey = strings.Repeat("a", 26) },
		"digest of 129 characters":   func(r *store.KnoxNew) { r.Digest += "0" },
		"no created":                 func(r *store.KnoxNew) { r.Created = time.Time{} },
		"expiry before created":      func(r *store.KnoxNew) { r.Expiry = now.Add(-time.Second) },
		"user id not a decimal":      func(r *store.KnoxNew) { r.UserID = "alice" },
	} {
		r := good
		mutate(&r)
		if err := s.KnoxCreate(ctx, r, 0); err == nil || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("KnoxCreate with a %s: %v, want a refusal", name, err)
		}
	}
	// A digest that exists: the store's failure, and the row unchanged.
	taken := good
	taken.Digest, taken.TokenKey = existing.digest, tok.key
	err := s.KnoxCreate(ctx, taken, 0)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("KnoxCreate of a digest that exists: %v, want ErrUnavailable", err)
	}
	if got, err := s.KnoxLookup(ctx, existing.key, now); err != nil || len(got) != 1 || !got[0].Expiry.Equal(now.Add(time.Hour)) {
		t.Errorf("the existing token after a colliding create: %+v, %v", got, err)
	}
	if got := knoxDigests(t, s); !slices.Equal(got, sorted(existing)) {
		t.Errorf("tokens after the refused creates: %v, want only %v", got, sorted(existing))
	}
}

func testKnoxDeletes(t *testing.T, open func(*testing.T) *Fixture) {
	f, s := openKnox(t, open)
	ctx := context.Background()
	addUser(t, s, "alice", true)
	addUser(t, s, "bob", true)
	alice, bob := f.UserID(t, "alice"), f.UserID(t, "bob")
	now := knoxNow()
	t.Run("KnoxDelete deletes the one token", func(t *testing.T) {
		a1 := createKnox(t, s, alice, now, now.Add(time.Hour))
		a2 := createKnox(t, s, alice, now, now.Add(time.Hour))
		b := createKnox(t, s, bob, now, now.Add(time.Hour))
		for i, want := range []bool{true, false} {
			if got, err := s.KnoxDelete(ctx, a1.digest); err != nil || got != want {
				t.Errorf("KnoxDelete #%d = %v, %v; want %v", i+1, got, err, want)
			}
		}
		if got := knoxDigests(t, s); !slices.Equal(got, sorted(a2, b)) {
			t.Errorf("tokens %v, want %v", got, sorted(a2, b))
		}
		cleanAll(t, s, alice, bob)
	})
	t.Run("KnoxDeleteUser deletes all the user's tokens", func(t *testing.T) {
		createKnox(t, s, alice, now, now.Add(time.Hour))
		createKnox(t, s, alice, now.Add(-2*time.Hour), now.Add(-time.Hour))
		createKnox(t, s, alice, now, time.Time{})
		b := createKnox(t, s, bob, now, now.Add(time.Hour))
		if n, err := s.KnoxDeleteUser(ctx, alice); err != nil || n != 3 {
			t.Errorf("KnoxDeleteUser(alice) = %d, %v; want 3", n, err)
		}
		if n, err := s.KnoxDeleteUser(ctx, alice); err != nil || n != 0 {
			t.Errorf("KnoxDeleteUser(alice) again = %d, %v; want 0", n, err)
		}
		if n, err := s.KnoxDeleteUser(ctx, "999999"); err != nil || n != 0 {
			t.Errorf("KnoxDeleteUser of an unknown user = %d, %v; want 0, nil", n, err)
		}
		if got := knoxDigests(t, s); !slices.Equal(got, sorted(b)) {
			t.Errorf("tokens %v, want bob's %v", got, sorted(b))
		}
		cleanAll(t, s, alice, bob)
	})
	t.Run("KnoxDeleteByTokenKey deletes the tokens of that token_key", func(t *testing.T) {
		a := createKnox(t, s, alice, now, now.Add(time.Hour))
		b := createKnox(t, s, bob, now, now.Add(time.Hour))
		// Another token of the same token_key, bob's.
		twin := knoxTok{token: a.key + strings.Repeat("f", 64-len(a.key)), key: a.key}
		twin.digest = knox.Digest(twin.token)
		if err := s.KnoxCreate(ctx, store.KnoxNew{Digest: twin.digest, TokenKey: twin.key, UserID: bob, Created: now}, 0); err != nil {
			t.Fatal(err)
		}
		if upper := strings.ToUpper(a.key); upper != a.key {
			if n, err := s.KnoxDeleteByTokenKey(ctx, upper); err != nil || n != 0 {
				t.Errorf("KnoxDeleteByTokenKey of the token_key in capitals = %d, %v; want 0", n, err)
			}
		}
		if n, err := s.KnoxDeleteByTokenKey(ctx, a.key[:14]); err != nil || n != 0 {
			t.Errorf("KnoxDeleteByTokenKey of a prefix = %d, %v; want 0", n, err)
		}
		if n, err := s.KnoxDeleteByTokenKey(ctx, a.key); err != nil || n != 2 {
			t.Errorf("KnoxDeleteByTokenKey = %d, %v; want 2", n, err)
		}
		if got := knoxDigests(t, s); !slices.Equal(got, sorted(b)) {
			t.Errorf("tokens %v, want %v", got, sorted(b))
		}
		cleanAll(t, s, alice, bob)
	})
}

// cleanAll deletes the users' knox tokens.
func cleanAll(t *testing.T, s KnoxStore, userIDs ...string) {
	t.Helper()
	for _, id := range userIDs {
		if _, err := s.KnoxDeleteUser(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
}

func testKnoxPurge(t *testing.T, open func(*testing.T) *Fixture) {
	f, s := openKnox(t, open)
	ctx := context.Background()
	addUser(t, s, "alice", true)
	addUser(t, s, "bob", true)
	alice, bob := f.UserID(t, "alice"), f.UserID(t, "bob")
	now := knoxNow()
	createKnox(t, s, alice, now.Add(-3*time.Hour), now.Add(-time.Hour))
	createKnox(t, s, bob, now.Add(-3*time.Hour), now.Add(-time.Microsecond))
	atNow := createKnox(t, s, bob, now.Add(-3*time.Hour), now)
	live := createKnox(t, s, alice, now, now.Add(time.Hour))
	never := createKnox(t, s, bob, now, time.Time{})
	if n, err := s.KnoxPurgeExpired(ctx, now); err != nil || n != 2 {
		t.Errorf("KnoxPurgeExpired = %d, %v; want 2", n, err)
	}
	if got, want := knoxDigests(t, s), sorted(atNow, live, never); !slices.Equal(got, want) {
		t.Errorf("tokens after KnoxPurgeExpired: %v, want %v", got, want)
	}
	if n, err := s.KnoxPurgeExpired(ctx, now); err != nil || n != 0 {
		t.Errorf("KnoxPurgeExpired again = %d, %v; want 0", n, err)
	}
}

func testKnoxList(t *testing.T, open func(*testing.T) *Fixture) {
	f, s := openKnox(t, open)
	ctx := context.Background()
	if got, err := s.KnoxList(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty table: KnoxList = %v, %v", got, err)
	}
	ids := make(map[string]string)
	for _, u := range []string{"zed", "amy", "bob", "notoken"} {
		addUser(t, s, u, true)
		ids[u] = f.UserID(t, u)
	}
	now := knoxNow()
	type row struct {
		user            string
		created, expiry time.Time
		tok             knoxTok
	}
	// amy's six, made out of order: one chance in 720 that another order
	// than created's gives theirs.
	rows := []row{
		{user: "zed", created: now, expiry: now.Add(time.Hour)},
		{user: "amy", created: now.Add(-time.Hour), expiry: time.Time{}},
		{user: "bob", created: now, expiry: now.Add(-time.Second + time.Hour)},
		{user: "amy", created: now.Add(-2 * time.Hour), expiry: now.Add(-time.Hour)},
		{user: "amy", created: now.Add(-time.Hour + time.Microsecond), expiry: now.Add(time.Hour)},
		{user: "amy", created: now.Add(-3 * time.Hour), expiry: now.Add(time.Hour)},
		{user: "amy", created: now.Add(-time.Minute), expiry: now.Add(time.Hour)},
		{user: "amy", created: now.Add(-time.Hour - time.Second), expiry: now.Add(time.Hour)},
	}
	for i := range rows {
		rows[i].tok = createKnox(t, s, ids[rows[i].user], rows[i].created, rows[i].expiry)
	}
	got, err := s.KnoxList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []store.KnoxToken
	for _, i := range []int{5, 3, 7, 1, 4, 6, 2, 0} {
		r := rows[i]
		want = append(want, store.KnoxToken{TokenKey: r.tok.key, Username: r.user, Created: r.created, Expiry: r.expiry})
	}
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.TokenKey == w.TokenKey && g.Username == w.Username && g.Created.Equal(w.Created) && g.Expiry.Equal(w.Expiry) && g.Expiry.IsZero() == w.Expiry.IsZero()
	}
	if !same {
		t.Errorf("KnoxList =\n%+v\nwant (by username, then created)\n%+v", got, want)
	}
}

func testSetLastLogin(t *testing.T, open func(*testing.T) *Fixture) {
	f, s := openKnox(t, open)
	ctx := context.Background()
	addUser(t, s, "alice", true)
	addUser(t, s, "bob", true)
	at := time.Date(2026, 11, 24, 7, 30, 9, 105062000, time.UTC)
	if err := s.SetLastLogin(ctx, f.UserID(t, "alice"), at); err != nil {
		t.Fatal(err)
	}
	if got := lastLogin(t, f, "alice"); !got.Equal(at) {
		t.Errorf("alice's last_login = %v, want %v", got, at)
	}
	if got := f.UserRow(t, "bob")["last_login"]; got != "NULL" {
		t.Errorf("bob's last_login = %s, want it left NULL", got)
	}
	if err := s.SetLastLogin(ctx, "999999", at); !errors.Is(err, store.ErrNoUser) {
		t.Errorf("SetLastLogin of an unknown user: %v, want ErrNoUser", err)
	}
}

// lastLogin reads auth_user.last_login from the fixture's UserRow (the
// stores give it as Django's SQLite text or RFC 3339).
func lastLogin(t *testing.T, f *Fixture, username string) time.Time {
	t.Helper()
	v := f.UserRow(t, username)["last_login"]
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999"} {
		if at, err := time.Parse(layout, v); err == nil {
			return at
		}
	}
	t.Fatalf("last_login %q is no time", v)
	return time.Time{}
}

// Times keep their microseconds, lose their nanoseconds (truncated, not
// rounded, as Python's and PostgreSQL's have none), and come back in UTC,
// whatever zone they were given in.
func testKnoxTimes(t *testing.T, open func(*testing.T) *Fixture) {
	f, s := openKnox(t, open)
	ctx := context.Background()
	addUser(t, s, "alice", true)
	alice := f.UserID(t, "alice")
	zone := time.FixedZone("UTC-6", -6*3600)
	for _, tt := range []struct {
		name            string
		created, expiry time.Time
		wantC, wantE    time.Time
	}{
		{"whole seconds", time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
			time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"one microsecond", time.Date(2025, 6, 1, 0, 0, 0, 1000, time.UTC), time.Date(2025, 6, 1, 10, 0, 0, 999999000, time.UTC),
			time.Date(2025, 6, 1, 0, 0, 0, 1000, time.UTC), time.Date(2025, 6, 1, 10, 0, 0, 999999000, time.UTC)},
		{"nanoseconds truncated", time.Date(2025, 6, 1, 0, 0, 0, 999, time.UTC), time.Date(2025, 6, 1, 0, 0, 1, 123456789, time.UTC),
			time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 1, 0, 0, 1, 123456000, time.UTC)},
		{"another zone", time.Date(2026, 11, 24, 1, 30, 9, 105062000, zone), time.Time{},
			time.Date(2026, 11, 24, 7, 30, 9, 105062000, time.UTC), time.Time{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok := createKnox(t, s, alice, tt.created, tt.expiry)
			got, err := s.KnoxLookup(ctx, tok.key, tt.wantC)
			if err != nil || len(got) != 1 {
				t.Fatalf("KnoxLookup = %+v, %v", got, err)
			}
			c := got[0]
			if !sameTime(c.Created, tt.wantC) || !sameTime(c.Expiry, tt.wantE) {
				t.Errorf("KnoxLookup: created %v, expiry %v; want %v, %v", c.Created, c.Expiry, tt.wantC, tt.wantE)
			}
			list, err := s.KnoxList(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range list {
				if l.TokenKey == tok.key && (!sameTime(l.Created, tt.wantC) || !sameTime(l.Expiry, tt.wantE)) {
					t.Errorf("KnoxList: created %v, expiry %v; want %v, %v", l.Created, l.Expiry, tt.wantC, tt.wantE)
				}
			}
		})
	}
}

// sameTime: the same instant, in the same zone (zero for zero).
func sameTime(a, b time.Time) bool {
	return a.Equal(b) && a.IsZero() == b.IsZero() && a.Location().String() == b.Location().String()
}

func testKnoxBadUserIDs(t *testing.T, open func(*testing.T) *Fixture) {
	_, s := openKnox(t, open)
	ctx := context.Background()
	now := time.Now()
	for _, id := range []string{"", "alice", "1.0", " 1", "01"} {
		if _, err := s.KnoxCleanup(ctx, id, now); !errors.Is(err, store.ErrNoUser) {
			t.Errorf("KnoxCleanup(%q): %v, want ErrNoUser", id, err)
		}
		if _, err := s.KnoxDeleteUser(ctx, id); !errors.Is(err, store.ErrNoUser) {
			t.Errorf("KnoxDeleteUser(%q): %v, want ErrNoUser", id, err)
		}
		if err := s.SetLastLogin(ctx, id, now); !errors.Is(err, store.ErrNoUser) {
			t.Errorf("SetLastLogin(%q): %v, want ErrNoUser", id, err)
		}
	}
}

// MigrateKnox makes knox's table, changes nothing where it is (rows
// included), and makes it again where it is missing.
func testMigrateKnox(t *testing.T, open func(*testing.T) *Fixture) {
	f, s := openKnox(t, open)
	ctx := context.Background()
	if got := f.KnoxSchema(t); got != f.WantKnoxSchema {
		t.Fatalf("knox_authtoken as MigrateKnox made it differs from knox's:\n got %s\nwant %s", got, f.WantKnoxSchema)
	}
	if got := f.Schema(t); got != f.WantSchema {
		t.Fatalf("MigrateKnox changed Django's tables:\n got %s\nwant %s", got, f.WantSchema)
	}
	addUser(t, s, "alice", true)
	now := knoxNow()
	tok := createKnox(t, s, f.UserID(t, "alice"), now, now.Add(time.Hour))
	for i := range 2 {
		if err := s.MigrateKnox(ctx); err != nil {
			t.Fatalf("MigrateKnox #%d over the table: %v", i+1, err)
		}
		if got := f.KnoxSchema(t); got != f.WantKnoxSchema {
			t.Fatalf("knox_authtoken after MigrateKnox #%d differs from knox's:\n got %s\nwant %s", i+1, got, f.WantKnoxSchema)
		}
		if got := knoxDigests(t, s); !slices.Equal(got, sorted(tok)) {
			t.Fatalf("after MigrateKnox #%d: tokens %v, want %v", i+1, got, sorted(tok))
		}
	}
	f.DropKnoxTable(t)
	if _, err := s.KnoxLookup(ctx, tok.key, now); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("KnoxLookup without the table: %v, want ErrUnavailable", err)
	}
	if id, err := s.Lookup(ctx, tokenFor(t, s, "alice")); err != nil || id.Username != "alice" {
		t.Errorf("Lookup without knox_authtoken: %+v, %v", id, err)
	}
	if err := s.MigrateKnox(ctx); err != nil {
		t.Fatalf("MigrateKnox with the table missing: %v", err)
	}
	if got := f.KnoxSchema(t); got != f.WantKnoxSchema {
		t.Fatalf("knox_authtoken made again differs from knox's:\n got %s\nwant %s", got, f.WantKnoxSchema)
	}
	tok = createKnox(t, s, f.UserID(t, "alice"), now, now.Add(time.Hour))
	if got := knoxDigests(t, s); !slices.Equal(got, sorted(tok)) {
		t.Errorf("in the table made again: tokens %v, want %v", got, sorted(tok))
	}
}
