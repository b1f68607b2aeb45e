package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/tokenauth/caddy-tokenauth/store"
	"github.com/tokenauth/caddy-tokenauth/store/internal/knoxrow"
	"github.com/tokenauth/caddy-tokenauth/store/internal/storeerr"
)

// django-rest-knox's knox_authtoken (store.Knox, store.KnoxAdmin). The
// methods of store.Knox serve requests (the token check, login, logout,
// and the writes the handler makes off the request path): each is bounded
// by the query timeout, as Lookup is. Those of store.KnoxAdmin serve
// `caddy token` and are bounded only by their context.

// KnoxLookup implements store.Knox.
func (s *SQLite) KnoxLookup(ctx context.Context, tokenKey string, now time.Time) ([]store.KnoxCandidate, error) {
	return s.db.knoxLookup(ctx, tokenKey, now)
}

// KnoxCleanup implements store.Knox.
func (s *SQLite) KnoxCleanup(ctx context.Context, userID string, now time.Time) (int64, error) {
	uid, err := knoxrow.UserID(userID)
	if err != nil {
		return 0, err
	}
	return s.db.knoxExec(ctx, true, "sqlite knox cleanup", knoxCleanupSQL, uid, djangoText(now))
}

// KnoxRefresh implements store.Knox.
func (s *SQLite) KnoxRefresh(ctx context.Context, digest string, expiry time.Time) error {
	_, err := s.db.knoxExec(ctx, true, "sqlite knox refresh", knoxRefreshSQL, djangoNullText(expiry), digest)
	return err
}

// KnoxCreate implements store.Knox.
func (s *SQLite) KnoxCreate(ctx context.Context, t store.KnoxNew, limit int) error {
	return s.db.knoxCreate(ctx, t, limit)
}

// KnoxDelete implements store.Knox.
func (s *SQLite) KnoxDelete(ctx context.Context, digest string) (bool, error) {
	n, err := s.db.knoxExec(ctx, true, "sqlite knox delete", knoxDeleteSQL, digest)
	return n > 0, err
}

// KnoxDeleteUser implements store.Knox.
func (s *SQLite) KnoxDeleteUser(ctx context.Context, userID string) (int64, error) {
	uid, err := knoxrow.UserID(userID)
	if err != nil {
		return 0, err
	}
	return s.db.knoxExec(ctx, true, "sqlite knox delete user", knoxDeleteUserSQL, uid)
}

// SetLastLogin implements store.Knox.
func (s *SQLite) SetLastLogin(ctx context.Context, userID string, t time.Time) error {
	uid, err := knoxrow.UserID(userID)
	if err != nil {
		return err
	}
	n, err := s.db.knoxExec(ctx, true, "sqlite set last login", setLastLoginSQL, djangoText(t), uid)
	if err == nil && n == 0 {
		err = fmt.Errorf("user id %s: %w", userID, store.ErrNoUser)
	}
	return err
}

// KnoxList implements store.KnoxAdmin.
func (s *SQLite) KnoxList(ctx context.Context) ([]store.KnoxToken, error) {
	return s.db.knoxList(ctx)
}

// KnoxDeleteByTokenKey implements store.KnoxAdmin.
func (s *SQLite) KnoxDeleteByTokenKey(ctx context.Context, tokenKey string) (int64, error) {
	return s.db.knoxExec(ctx, false, "sqlite knox revoke", knoxDeleteByTokenKeySQL, tokenKey)
}

// KnoxPurgeExpired implements store.KnoxAdmin.
func (s *SQLite) KnoxPurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	return s.db.knoxExec(ctx, false, "sqlite knox purge", knoxPurgeExpiredSQL, djangoText(now))
}

// MigrateKnox implements store.KnoxAdmin: knox_authtoken is created where
// it is missing, whatever the create option says. auth_user must be there
// (Migrate makes it).
func (s *SQLite) MigrateKnox(ctx context.Context) error {
	h, err := s.db.use(ctx)
	if err != nil {
		return err
	}
	defer h.release()
	return storeerr.Unavailable("sqlite migrate knox", migrateKnox(ctx, h.db))
}

// migrateKnox creates knox_authtoken and its indexes when the table is
// missing, and nothing else.
func migrateKnox(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, t := range []struct {
		table string
		need  bool // else: made when missing
	}{{"auth_user", true}, {"knox_authtoken", false}} {
		var exists bool
		if err := tx.QueryRowContext(ctx, tableExistsSQL, t.table).Scan(&exists); err != nil {
			return err
		}
		switch {
		case t.need && !exists:
			return noTable(t.table)
		case !t.need && exists:
			return nil // never changed
		}
	}
	for _, stmt := range ddlKnox {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("creating table knox_authtoken: %w", err)
		}
	}
	return tx.Commit()
}

// knoxExec runs a write on the current pool, bounded by the query timeout
// when timed, and returns how many rows it changed.
func (d *database) knoxExec(ctx context.Context, timed bool, op, query string, args ...any) (int64, error) {
	if timed {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.timeout)
		defer cancel()
	}
	h, err := d.use(ctx)
	if err != nil {
		return 0, err
	}
	defer h.release()
	res, err := h.db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, storeerr.Unavailable(op, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (d *database) knoxLookup(ctx context.Context, tokenKey string, now time.Time) ([]store.KnoxCandidate, error) {
	const op = "sqlite knox lookup"
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	h, err := d.use(ctx)
	if err != nil {
		return nil, err
	}
	defer h.release()
	st, err := h.knoxq.get(ctx, h.db)
	if err != nil {
		return nil, storeerr.Unavailable(op, err)
	}
	rows, err := st.QueryContext(ctx, tokenKey, djangoText(now))
	if err != nil {
		return nil, storeerr.Unavailable(op, err)
	}
	defer rows.Close()
	var out []store.KnoxCandidate
	for rows.Next() {
		var (
			c       store.KnoxCandidate
			created string
			expiry  sql.NullString
			id      int64
		)
		if err := rows.Scan(&c.Digest, &created, &expiry, &id, &c.User.Username, &c.User.Active, &c.UserHasExpired); err != nil {
			return nil, storeerr.Unavailable(op, err)
		}
		c.User.ID = strconv.FormatInt(id, 10)
		c.Created = parseDjangoTime(created)
		if expiry.Valid {
			c.Expiry = parseDjangoTime(expiry.String)
		}
		out = append(out, c)
	}
	return out, storeerr.Unavailable(op, rows.Err())
}

func (d *database) knoxCreate(ctx context.Context, t store.KnoxNew, limit int) error {
	if err := knoxrow.Check(t); err != nil {
		return err
	}
	uid, _ := knoxrow.UserID(t.UserID)
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.inTx(ctx, "sqlite knox create", func(tx *sql.Tx) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, knoxLockUserSQL, uid).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("user id %s: %w", t.UserID, store.ErrNoUser)
		}
		if limit > 0 {
			var live int
			if err := tx.QueryRowContext(ctx, knoxCountLiveSQL, uid, djangoText(t.Created)).Scan(&live); err != nil {
				return err
			}
			if live >= limit {
				return fmt.Errorf("user id %s holds %d live tokens, the limit is %d: %w", t.UserID, live, limit, store.ErrTokenLimit)
			}
		}
		_, err := tx.ExecContext(ctx, knoxInsertSQL, t.Digest, t.TokenKey, uid, djangoText(t.Created), djangoNullText(t.Expiry))
		if err != nil {
			return fmt.Errorf("inserting knox token: %w", err)
		}
		return nil
	})
}

func (d *database) knoxList(ctx context.Context) ([]store.KnoxToken, error) {
	const op = "sqlite knox list"
	h, err := d.use(ctx)
	if err != nil {
		return nil, err
	}
	defer h.release()
	rows, err := h.db.QueryContext(ctx, knoxListSQL)
	if err != nil {
		return nil, storeerr.Unavailable(op, err)
	}
	defer rows.Close()
	var out []store.KnoxToken
	for rows.Next() {
		var t store.KnoxToken
		var created string
		var expiry sql.NullString
		if err := rows.Scan(&t.TokenKey, &t.Username, &created, &expiry); err != nil {
			return nil, storeerr.Unavailable(op, err)
		}
		t.Created = parseDjangoTime(created)
		if expiry.Valid {
			t.Expiry = parseDjangoTime(expiry.String)
		}
		out = append(out, t)
	}
	return out, storeerr.Unavailable(op, rows.Err())
}
