package tokenauth

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/tokenauth/caddy-tokenauth/internal/knox"
	"github.com/tokenauth/caddy-tokenauth/internal/writeback"
	"github.com/tokenauth/caddy-tokenauth/store"
)

// The glue of tokens knox: the lookup the cache calls on a miss, the
// auto-refresh of a hit, and the writes knox makes on the request path,
// which run here off it, coalesced (internal/writeback).

// knoxWriteRetry is how soon a refresh or cleanup the store refused is
// tried again.
const knoxWriteRetry = time.Second

// provisionKnox sets up tokens knox: the store's knox table, and the
// queues of its background writes.
func (h *TokenAuth) provisionKnox(mod any) error {
	if t := h.Tokens; t != nil && t.MaxAge > 0 {
		h.maxAge = time.Duration(t.MaxAge)
	}
	if !h.Tokens.knox() {
		return nil
	}
	k, ok := mod.(store.Knox)
	if !ok {
		return fmt.Errorf("token store %T cannot serve tokens knox: it does not implement store.Knox", mod)
	}
	h.knox = k
	failed := func(what string) func(error) {
		return func(err error) {
			h.logger.Warn("knox "+what+" failed; retrying", zap.Error(err))
		}
	}
	h.cleanup = writeback.New(func(ctx context.Context, userID string, now time.Time) error {
		_, err := k.KnoxCleanup(ctx, userID, now)
		return err
	}, failed("cleanup of expired tokens"), storeTimeout, knoxWriteRetry)
	if h.Tokens.AutoRefresh {
		h.refresh = writeback.New(func(ctx context.Context, digest string, expiry time.Time) error {
			return k.KnoxRefresh(ctx, digest, expiry)
		}, failed("auto-refresh"), storeTimeout, knoxWriteRetry)
	}
	return nil
}

// checkTokenTable makes sure, as the handler starts, that the token table
// it reads is there, creating knox_authtoken where the store's options
// say to create tables. A database that does not answer now is left to the
// requests, which get 503 until it does, as when a store starts before its
// database.
func (h *TokenAuth) checkTokenTable(mod any) error {
	t, ok := mod.(store.Tables)
	if !ok {
		return nil
	}
	table, hint := "authtoken_token", "add rest_framework.authtoken to Django's INSTALLED_APPS and run manage.py migrate, or run caddy token migrate"
	if h.knox != nil {
		table, hint = "knox_authtoken", "add knox to Django's INSTALLED_APPS and run manage.py migrate, or run caddy token migrate --tokens knox"
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	has, err := t.HasTable(ctx, table)
	switch {
	case err != nil:
		h.logger.Warn("could not check the token table; requests get 503 until the database answers",
			zap.String("table", table), zap.Error(err))
		return nil
	case has:
		return nil
	}
	if a, ok := mod.(store.KnoxAdmin); ok && h.knox != nil && t.CreatesTables() {
		return a.MigrateKnox(ctx)
	}
	return fmt.Errorf("the token store's database has no %s table: %s", table, hint)
}

// loadKnox is knox's TokenAuthentication.authenticate_credentials: a key
// that cannot be knox's (see knox.Plausible) refused without a query, the
// rows whose token_key is the token's first 15 characters, each expired
// one skipped, the first whose digest matches in constant time. knox's
// cleanup (deleting the expired tokens of each candidate's user) is queued
// rather than run here, so that a lookup stays one read.
func (h *TokenAuth) loadKnox(ctx context.Context, token string) (cachedIdentity, error) {
	if !h.anyKey && !knox.Plausible(token) {
		return cachedIdentity{}, fmt.Errorf("%w: not a knox key", store.ErrNotFound)
	}
	now := time.Now()
	cands, err := h.knox.KnoxLookup(ctx, knox.TokenKey(token), now)
	if err != nil {
		return cachedIdentity{}, err
	}
	digest := ""
	for i := range cands {
		c := &cands[i]
		if c.UserHasExpired {
			h.cleanup.Put(c.User.ID, now)
		}
		if !c.Expiry.IsZero() && c.Expiry.Before(now) {
			continue
		}
		if digest == "" {
			digest = knox.Digest(token)
		}
		if knox.Match(digest, c.Digest) {
			tok := &tokenState{digest: c.Digest, userID: c.User.ID, created: c.Created.UnixNano()}
			if !c.Expiry.IsZero() {
				tok.until = c.Expiry.UnixNano()
				tok.expiry.Store(tok.until)
			}
			return h.identity(ctx, c.User, tok)
		}
	}
	return cachedIdentity{}, store.ErrNotFound
}

// touch is knox's renew_token on a request of the token: the new expiry
// is written (off the request path) only when it moves by more than
// min_refresh_interval, so a token asked for a thousand times a minute is
// written once. The swap makes concurrent requests write it once.
func (h *TokenAuth) touch(t *tokenState) {
	cur := t.expiry.Load()
	if cur == 0 { // knox refreshes only tokens that expire
		return
	}
	var now int64
	if h.cache != nil {
		now = h.cache.Now()
	} else {
		now = time.Now().UnixNano()
	}
	tk := h.Tokens
	next, write := knox.Refresh(now, t.created, cur, tk.ttl(), time.Duration(tk.MaxTTL), tk.minRefresh())
	next -= next % int64(time.Microsecond) // what the database keeps
	if write && t.expiry.CompareAndSwap(cur, next) {
		h.refresh.Put(t.digest, time.Unix(0, next))
	}
}

// closeKnox writes what the queues hold and stops them. The queues stay in
// place: a request of the old config still running after Cleanup writes
// through a closed queue at once (writeback's Put after Close).
func (h *TokenAuth) closeKnox() {
	for _, q := range []*writeback.Queue[string, time.Time]{h.refresh, h.cleanup} {
		if q != nil {
			q.Close()
		}
	}
}
