package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenauth/caddy-tokenauth/store"
	"github.com/tokenauth/caddy-tokenauth/store/internal/knoxrow"
	"github.com/tokenauth/caddy-tokenauth/store/internal/storeerr"
)

// django-rest-knox's knox_authtoken (store.Knox, store.KnoxAdmin). The
// methods of store.Knox serve requests (the token check, login, logout,
// and the writes the handler makes off the request path): each is bounded
// by the query timeout, as Lookup is. Those of store.KnoxAdmin serve
// `caddy token` and are bounded only by their context. The store's own
// deletes notify, in their transaction, as its writes to authtoken_token
// do; its inserts and refreshes do not, for the reasons the triggers
// don't (knoxTriggerSQL, knoxUpdateTriggerSQL).

// KnoxLookup implements store.Knox.
func (s *Postgres) KnoxLookup(ctx context.Context, tokenKey string, now time.Time) ([]store.KnoxCandidate, error) {
	ctx, cancel := context.WithTimeout(ctx, s.db.timeout)
	defer cancel()
	if !s.db.ready.Load() {
		// The database was down at provision: check the tables on first
		// contact, within the lookup's time.
		if err := s.ensure(ctx); err != nil {
			return nil, scrubError(err, s.secrets)
		}
	}
	c, err := s.db.knoxLookup(ctx, tokenKey, now)
	return c, scrubError(err, s.secrets)
}

// KnoxCleanup implements store.Knox.
func (s *Postgres) KnoxCleanup(ctx context.Context, userID string, now time.Time) (int64, error) {
	uid, err := knoxrow.UserID(userID)
	if err != nil {
		return 0, err
	}
	return s.knoxDelete(ctx, true, "postgres knox cleanup", knoxCleanupSQL, uid, now)
}

// KnoxRefresh implements store.Knox.
func (s *Postgres) KnoxRefresh(ctx context.Context, digest string, expiry time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.db.timeout)
	defer cancel()
	if err := s.ensure(ctx); err != nil {
		return s.wrap(err)
	}
	_, err := s.db.pool.Exec(ctx, s.db.q(knoxRefreshSQL), nullTime(expiry), digest)
	return s.wrap(storeerr.Unavailable("postgres knox refresh", err))
}

// KnoxCreate implements store.Knox.
func (s *Postgres) KnoxCreate(ctx context.Context, t store.KnoxNew, limit int) error {
	if err := knoxrow.Check(t); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.db.timeout)
	defer cancel()
	if err := s.ensure(ctx); err != nil {
		return s.wrap(err)
	}
	return s.wrap(s.db.knoxCreate(ctx, t, limit))
}

// KnoxDelete implements store.Knox.
func (s *Postgres) KnoxDelete(ctx context.Context, digest string) (bool, error) {
	n, err := s.knoxDelete(ctx, true, "postgres knox delete", knoxDeleteSQL, digest)
	return n > 0, err
}

// KnoxDeleteUser implements store.Knox.
func (s *Postgres) KnoxDeleteUser(ctx context.Context, userID string) (int64, error) {
	uid, err := knoxrow.UserID(userID)
	if err != nil {
		return 0, err
	}
	return s.knoxDelete(ctx, true, "postgres knox delete user", knoxDeleteUserSQL, uid)
}

// SetLastLogin implements store.Knox.
func (s *Postgres) SetLastLogin(ctx context.Context, userID string, t time.Time) error {
	uid, err := knoxrow.UserID(userID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.db.timeout)
	defer cancel()
	if err := s.ensure(ctx); err != nil {
		return s.wrap(err)
	}
	tag, err := s.db.pool.Exec(ctx, s.db.q(setLastLoginSQL), t, uid)
	if err != nil {
		return s.wrap(storeerr.Unavailable("postgres set last login", err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("user id %s: %w", userID, store.ErrNoUser)
	}
	return nil
}

// KnoxList implements store.KnoxAdmin.
func (s *Postgres) KnoxList(ctx context.Context) ([]store.KnoxToken, error) {
	if err := s.ensure(ctx); err != nil {
		return nil, s.wrap(err)
	}
	tokens, err := s.db.knoxList(ctx)
	return tokens, s.wrap(err)
}

// KnoxDeleteByTokenKey implements store.KnoxAdmin.
func (s *Postgres) KnoxDeleteByTokenKey(ctx context.Context, tokenKey string) (int64, error) {
	return s.knoxDelete(ctx, false, "postgres knox revoke", knoxDeleteByTokenKeySQL, tokenKey)
}

// KnoxPurgeExpired implements store.KnoxAdmin.
func (s *Postgres) KnoxPurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	return s.knoxDelete(ctx, false, "postgres knox purge", knoxPurgeExpiredSQL, now)
}

// MigrateKnox implements store.KnoxAdmin: knox_authtoken, with its
// indexes and foreign key, is created where it is missing, whatever the
// create option says, and with the notify option its triggers (and those
// of the other tables) where missing. auth_user must be there (Migrate
// makes it).
func (s *Postgres) MigrateKnox(ctx context.Context) error {
	return s.wrap(s.db.migrateKnox(ctx))
}

// knoxDelete runs a delete in a transaction that notifies when it deleted
// anything, bounded by the query timeout when timed, and returns how many
// rows it deleted.
func (s *Postgres) knoxDelete(ctx context.Context, timed bool, op, query string, args ...any) (int64, error) {
	if timed {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.db.timeout)
		defer cancel()
	}
	if err := s.ensure(ctx); err != nil {
		return 0, s.wrap(err)
	}
	var n int64
	err := s.db.inTx(ctx, op, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, s.db.q(query), args...)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		return notifyKnoxIf(ctx, tx, n > 0)
	})
	return n, s.wrap(err)
}

// nullTime is t, or NULL for the zero time (never).
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// migrateKnox creates knox_authtoken when it is missing, then the
// triggers with notify, in one transaction that holds the migration lock,
// and settles again: the triggers now looked for include knox_authtoken's.
func (d *database) migrateKnox(ctx context.Context) error {
	const op = "postgres migrate knox"
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, migrateLockSQL); err != nil {
			return err
		}
		for _, t := range []struct {
			table string
			need  bool // else: made when missing
		}{{d.authUser, true}, {d.knoxToken, false}} {
			var exists bool
			if err := tx.QueryRow(ctx, tableExistsSQL, t.table).Scan(&exists); err != nil {
				return err
			}
			switch {
			case t.need && !exists:
				return missingTable(t.table)
			case t.need, exists:
				continue
			}
			for _, stmt := range ddlKnox {
				if _, err := tx.Exec(ctx, d.ddl(stmt)); err != nil {
					return fmt.Errorf("creating table %s: %w", t.table, err)
				}
			}
		}
		if d.notify {
			return d.installTriggers(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return storeerr.Unavailable(op, err)
	}
	return storeerr.Unavailable(op, d.settle(ctx))
}

func (d *database) knoxLookup(ctx context.Context, tokenKey string, now time.Time) ([]store.KnoxCandidate, error) {
	const op = "postgres knox lookup"
	rows, err := d.pool.Query(ctx, d.q(knoxLookupSQL), tokenKey, now)
	if err != nil {
		return nil, storeerr.Unavailable(op, err)
	}
	var out []store.KnoxCandidate
	var (
		c      store.KnoxCandidate
		expiry *time.Time
		id     int64
	)
	_, err = pgx.ForEachRow(rows, []any{&c.Digest, &c.Created, &expiry, &id, &c.User.Username, &c.User.Active, &c.UserHasExpired}, func() error {
		c.User.ID = strconv.FormatInt(id, 10)
		c.Created = c.Created.UTC()
		c.Expiry = time.Time{}
		if expiry != nil {
			c.Expiry = expiry.UTC()
		}
		out = append(out, c)
		return nil
	})
	return out, storeerr.Unavailable(op, err)
}

func (d *database) knoxCreate(ctx context.Context, t store.KnoxNew, limit int) error {
	uid, _ := knoxrow.UserID(t.UserID)
	return d.inTx(ctx, "postgres knox create", func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, d.q(knoxLockUserSQL), uid).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("user id %s: %w", t.UserID, store.ErrNoUser)
		}
		if err != nil {
			return err
		}
		if limit > 0 {
			var live int
			if err := tx.QueryRow(ctx, d.q(knoxCountLiveSQL), uid, t.Created).Scan(&live); err != nil {
				return err
			}
			if live >= limit {
				return fmt.Errorf("user id %s holds %d live tokens, the limit is %d: %w", t.UserID, live, limit, store.ErrTokenLimit)
			}
		}
		_, err = tx.Exec(ctx, d.q(knoxInsertSQL), t.Digest, t.TokenKey, uid, t.Created, nullTime(t.Expiry))
		if err != nil {
			return fmt.Errorf("inserting knox token: %w", err)
		}
		return nil
	})
}

func (d *database) knoxList(ctx context.Context) ([]store.KnoxToken, error) {
	const op = "postgres knox list"
	rows, err := d.pool.Query(ctx, d.q(knoxListSQL))
	if err != nil {
		return nil, storeerr.Unavailable(op, err)
	}
	var out []store.KnoxToken
	var t store.KnoxToken
	var expiry *time.Time
	_, err = pgx.ForEachRow(rows, []any{&t.TokenKey, &t.Username, &t.Created, &expiry}, func() error {
		t.Created = t.Created.UTC()
		t.Expiry = time.Time{}
		if expiry != nil {
			t.Expiry = expiry.UTC()
		}
		out = append(out, t)
		return nil
	})
	return out, storeerr.Unavailable(op, err)
}
