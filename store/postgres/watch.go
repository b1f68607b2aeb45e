package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/tokenauth/caddy-tokenauth/store/internal/subscribe"
)

// Changes are pushed to every Caddy sharing the database with
// LISTEN/NOTIFY on one channel, whatever the schema. The payload is the
// table's name; receivers flush everything, so it is informational only.
const (
	channel        = "token_auth"
	notifyFunction = "token_auth_notify" // in the store's schema
	notifyTrigger  = "token_auth_notify" // on each of the tables
	// notifyUpdateTrigger is knox_authtoken's second trigger, for the
	// updates that can make a cached answer stale (knoxUpdateTriggerSQL).
	notifyUpdateTrigger = "token_auth_notify_update"
)

// notifyBody is the trigger function's body, compared with pg_proc.prosrc
// to leave an identical function alone.
const notifyBody = `
BEGIN
	PERFORM pg_notify('token_auth', TG_TABLE_NAME);
	RETURN NULL;
END
`

// installTriggers creates the trigger function (replaced only when its
// body differs) and the triggers that are missing on the tables that are
// there, in tx, which holds the migration lock.
func (d *database) installTriggers(ctx context.Context, tx pgx.Tx) error {
	there, err := d.tables(ctx, tx)
	if err != nil {
		return err
	}
	fn := qualify(d.schema, notifyFunction)
	var src string
	if err := tx.QueryRow(ctx, functionSourceSQL, fn+"()").Scan(&src); err != nil {
		return err
	}
	if src != notifyBody {
		if _, err := tx.Exec(ctx, d.q(notifyFunctionSQL)); err != nil {
			return fmt.Errorf("creating function %s: %w", fn, err)
		}
	}
	for _, t := range []struct{ table, name, ddl string }{
		{d.authToken, notifyTrigger, tokenTriggerSQL},
		{d.authUser, notifyTrigger, userTriggerSQL},
		{d.knoxToken, notifyTrigger, knoxTriggerSQL},
		{d.knoxToken, notifyUpdateTrigger, knoxUpdateTriggerSQL},
	} {
		if !there[t.table] {
			continue
		}
		var exists bool
		if err := tx.QueryRow(ctx, triggerExistsSQL, t.table, t.name).Scan(&exists); err != nil {
			return err
		}
		if exists {
			continue
		}
		if _, err := tx.Exec(ctx, d.q(t.ddl)); err != nil {
			return fmt.Errorf("creating trigger %s on %s: %w", t.name, t.table, err)
		}
	}
	return d.installPermissionTriggers(ctx, tx)
}

// triggersPresent tells whether each table that is there carries
// token_auth's enabled notification triggers, installed by this store or
// anyone else.
func (d *database) triggersPresent(ctx context.Context) (bool, error) {
	var ok bool
	err := d.pool.QueryRow(ctx, triggersPresentSQL, d.authUser, d.authToken, d.knoxToken).Scan(&ok)
	return ok, err
}

// notifyIf sends the store's own notification in tx when changed.
func notifyIf(ctx context.Context, tx pgx.Tx, changed bool) error {
	return notifyWith(ctx, tx, changed, notifySQL)
}

// notifyKnoxIf is notifyIf for a write to knox_authtoken.
func notifyKnoxIf(ctx context.Context, tx pgx.Tx, changed bool) error {
	return notifyWith(ctx, tx, changed, notifyKnoxSQL)
}

func notifyWith(ctx context.Context, tx pgx.Tx, changed bool, sql string) error {
	if !changed {
		return nil
	}
	_, err := tx.Exec(ctx, sql)
	return err
}

// Watch implements store.Watcher. One connection per database (per shared
// pool) LISTENs on the channel token_auth while anyone watches; flush is
// called on every notification, and on every gap: when the connection is
// lost, after each failed attempt to get it back, and once LISTEN works
// again. pushed is true when the notify option is set or the triggers were
// found on both tables; without them only the changes made through
// token_auth itself (logout, `caddy token`) are pushed, not Django's.
// Notifications cost nothing while nothing changes, so live is not used.
func (s *Postgres) Watch(flush func(), live func() bool) (stop func(), pushed bool) {
	if s.shared == nil || s.stops == nil {
		return func() {}, false
	}
	stop = s.shared.listener.watch(flush, s.logger, s.secrets)
	s.stops.Add(stop)
	return stop, s.Notify || s.db.triggers.Load()
}

// The listener's pace: how long it waits for a connection, LISTEN or a
// ping; how long an idle connection goes unchecked (a connection that
// died silently would otherwise hide every change); and the backoff
// between attempts to reconnect.
const (
	listenTimeout = 5 * time.Second
	idleCheck     = 5 * time.Second
	minBackoff    = 100 * time.Millisecond
	maxBackoff    = 5 * time.Second
)

// listener holds a dedicated connection (never a pooled one: a pooled
// connection must not keep a LISTEN) for one shared pool, while anyone
// watches.
type listener struct {
	config *pgx.ConnConfig // copied for each connection

	subs subscribe.Registry // the watches, and the loop while there are any

	listens atomic.Int64 // successful LISTENs, for tests
}

func newListener(config *pgx.ConnConfig) *listener {
	return &listener{config: config}
}

// watch registers flush and starts the loop if it is not running.
func (l *listener) watch(flush func(), logger *zap.Logger, secrets []string) (stop func()) {
	return l.subs.Add(subscribe.Subscriber{Flush: flush}, func() func() {
		if logger == nil {
			logger = zap.NewNop()
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go l.run(ctx, done, logger, secrets)
		return func() {
			cancel()
			<-done
		}
	})
}

// shutdown stops the loop for good, whoever still watches.
func (l *listener) shutdown() { l.subs.Close() }

// flush calls every registered flush.
func (l *listener) flush() { l.subs.Flush() }

// run keeps a LISTEN going until ctx ends: after any error it flushes
// (a change may have gone unnoticed), waits, and tries again.
// Errors are logged scrubbed of secrets.
func (l *listener) run(ctx context.Context, done chan struct{}, logger *zap.Logger, secrets []string) {
	defer close(done)
	backoff := minBackoff
	failures := 0
	for {
		listened, err := l.session(ctx, logger, failures > 0)
		if ctx.Err() != nil {
			return
		}
		l.flush()
		if listened {
			backoff, failures = minBackoff, 0
		}
		failures++
		err = scrubError(err, secrets)
		if failures == 1 {
			logger.Warn("postgres store: change notifications interrupted; caches are flushed until they are back",
				zap.Error(err))
		} else {
			logger.Debug("postgres store: change notifications still unavailable",
				zap.Int("attempt", failures), zap.Error(err))
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session connects, LISTENs, flushes and then flushes on every
// notification, until the connection fails or ctx ends. listened reports
// whether LISTEN succeeded.
func (l *listener) session(ctx context.Context, logger *zap.Logger, recovering bool) (listened bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, listenTimeout)
	conn, err := pgx.ConnectConfig(cctx, l.config.Copy())
	cancel()
	if err != nil {
		return false, fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	cctx, cancel = context.WithTimeout(ctx, listenTimeout)
	_, err = conn.Exec(cctx, listenSQL)
	cancel()
	if err != nil {
		return false, fmt.Errorf("LISTEN %s: %w", channel, err)
	}
	l.listens.Add(1)
	// Whatever changed before LISTEN took effect went unnoticed.
	l.flush()
	if recovering {
		logger.Info("postgres store: change notifications are back")
	} else {
		logger.Debug("postgres store: listening for change notifications", zap.String("channel", channel))
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, idleCheck)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if n != nil {
			l.flush()
		}
		switch {
		case ctx.Err() != nil:
			return true, ctx.Err()
		case err == nil:
			continue
		case !pgconn.Timeout(err) && !errors.Is(err, context.DeadlineExceeded):
			return true, fmt.Errorf("waiting for notifications: %w", err)
		}
		// Idle for a while: make sure the connection still works.
		pctx, cancel := context.WithTimeout(ctx, listenTimeout)
		err = conn.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
		if err != nil {
			return true, fmt.Errorf("checking the connection: %w", err)
		}
	}
}
