package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"modernc.org/sqlite"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// A database serves one path, but the file at that path can change under
// it: a restore, rsync or deploy renames a new file over it, or it is
// removed. Connections SQLite already has keep reading the old file (and
// PRAGMA data_version on them never moves), so the path is checked with
// os.Stat at most once per poll interval: by the poller while a cache is
// live, and by the queries themselves, so that a handler without a cache
// is covered too. When the file there is not the one the pool was opened
// on, the pool is replaced, in this order:
//
//  1. queries stop taking the old pool (they wait for the new one) and
//     subscribers are flushed;
//  2. once the old pool's queries have ended, its -wal is checkpointed into
//     the old file and truncated, and the pool is closed. SQLite names the
//     -wal and -shm after the path and does not checkpoint a file that has
//     moved when it closes: left alone, the old -wal would be read as the
//     new file's, and revoked tokens would come back from it;
//  3. the file now at the path is opened as it is, never created.
//
// While there is no usable file, every query fails with
// store.ErrUnavailable wrapping the cause. No pool ever opens a connection
// on a file other than its own (see fileConnector).

// handle is one connection pool on one file, or, with no pool, the reason
// there is none.
type handle struct {
	db      *sql.DB
	lookupq stmt        // lookupSQL
	knoxq   stmt        // knoxLookupSQL
	file    os.FileInfo // the file the pool was opened on, for os.SameFile

	// refs counts the queries using the pool, plus one while it is the
	// database's current handle; drained is closed when it reaches zero.
	refs    atomic.Int64
	drained chan struct{}

	// err, on a handle without a pool, says why queries cannot run; wait,
	// when not nil, is closed once the handle that follows it is current
	// (the file is being reopened: queries wait rather than fail).
	err  error
	wait chan struct{}
}

// release ends one use of the pool.
func (h *handle) release() {
	if h.refs.Add(-1) == 0 {
		close(h.drained)
	}
}

// errNotRegular refuses what SQLite cannot use as a database file and an
// open could block on (a FIFO, a device).
var errNotRegular = errors.New("not a regular file")

// openFile checks what is at path before SQLite is let near it, creating
// an empty file there when it is missing and create is set, and returns the
// file's identity.
//
// A file created here is owner-only (0600), whatever the umask: it will
// hold keys and password hashes. SQLite gives the -wal, -shm and -journal
// it makes beside a database the database file's own permissions, so they
// are owner-only too. A file that exists keeps its mode.
func openFile(path string, create bool) (os.FileInfo, error) {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return nil, errors.New("is a directory")
	case err == nil && !fi.Mode().IsRegular():
		return nil, errNotRegular
	case errors.Is(err, os.ErrNotExist) && !create:
		return nil, errors.New("no such file (name an existing Django database, add the create option, or leave the path out for the embedded store)")
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			defer f.Close()
			return f.Stat()
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		// Made by another process meanwhile: taken as it is.
	case err != nil:
		return nil, err
	}
	// SQLite opens an unreadable file lazily; say so now, by name. Without
	// O_NONBLOCK, a FIFO put there since the Stat would block the open.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	return fi, nil
}

// openHandle opens a pool on the file at d.path, whose identity is file,
// creating the tables first if asked to.
func (d *database) openHandle(ctx context.Context, file os.FileInfo, create bool) (*handle, error) {
	base, err := sqlite.NewConnector(d.dsn)
	if err != nil {
		return nil, err
	}
	sdb := sql.OpenDB(fileConnector{base, d, file})
	sdb.SetMaxOpenConns(16)
	sdb.SetMaxIdleConns(4)
	h := &handle{db: sdb, file: file, drained: make(chan struct{})}
	h.lookupq.query, h.knoxq.query = lookupSQL, knoxLookupSQL
	h.refs.Store(1)
	if create {
		if err := migrate(ctx, sdb); err != nil {
			sdb.Close()
			return nil, err
		}
	}
	if err := h.prepare(ctx); err != nil {
		sdb.Close()
		return nil, err
	}
	return h, nil
}

// fileConnector opens the pool's connections, each on the file the pool
// is for: a connection SQLite opened on another file now at the path is
// closed at once, before it reads anything (and so before it could take
// the old file's -wal for the new file's), and the query fails until the
// pool is replaced.
type fileConnector struct {
	driver.Connector
	d    *database
	file os.FileInfo
}

// Connect implements driver.Connector.
func (c fileConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	// SQLite has opened the file (it reads it, and any -wal, only when
	// the first statement runs): check that it opened this one.
	if fi, err := os.Stat(c.d.path); err != nil || !os.SameFile(fi, c.file) {
		conn.Close()
		c.d.checked.Store(math.MinInt64 / 2) // the next query checks the file
		return nil, fmt.Errorf("the file at %s is not the one this pool was opened on", c.d.path)
	}
	return conn, nil
}

// use returns the current pool for one query, after checking (at most once
// per poll interval) that the file at the path is still the one it is
// open on. The caller releases it.
func (d *database) use(ctx context.Context) (*handle, error) {
	d.checkFile(false)
	return d.acquire(ctx, true)
}

// acquire takes a use of the current pool. While the file is being
// reopened it waits for the new pool, unless wait is false or ctx ends;
// while there is no usable file it fails with store.ErrUnavailable.
func (d *database) acquire(ctx context.Context, wait bool) (*handle, error) {
	for {
		h := d.cur.Load()
		if h.db != nil {
			// refs is zero only once h has been replaced: load again.
			if n := h.refs.Load(); n > 0 && h.refs.CompareAndSwap(n, n+1) {
				return h, nil
			}
			continue
		}
		if h.wait == nil || !wait {
			return nil, fmt.Errorf("%w: %w", store.ErrUnavailable, h.err)
		}
		select {
		case <-h.wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w: %w", store.ErrUnavailable, h.err, ctx.Err())
		}
	}
}

// checkFile compares the file at the path with the one the pool is open
// on, and replaces the pool when they differ. Unless forced, it runs at
// most once per poll interval over all callers, and a caller that finds a
// check under way goes on with the pool it has: the path costs a clock
// read and an atomic load, and the one os.Stat in an interval is made by
// whoever comes first, with no lock anyone waits for.
func (d *database) checkFile(force bool) {
	now := int64(time.Since(d.epoch))
	if !force {
		last := d.checked.Load()
		if now-last < int64(pollInterval) || !d.checked.CompareAndSwap(last, now) {
			return
		}
	} else {
		d.checked.Store(now)
	}
	if !d.swapMu.TryLock() {
		return
	}
	defer d.swapMu.Unlock()
	if d.closed {
		return
	}
	cur := d.cur.Load()
	fi, err := os.Stat(d.path)
	if err == nil && !fi.Mode().IsRegular() {
		err = errNotRegular
	}
	switch {
	case err == nil && cur.file != nil && os.SameFile(cur.file, fi):
		return // the file it is open on
	case err != nil && cur.db == nil:
		return // still no usable file
	}

	// Stop serving from the old file before anything else, and close it
	// before the new one is opened (see the order above).
	pending := &handle{err: fmt.Errorf("sqlite store %s is being reopened", d.path), wait: make(chan struct{})}
	old := d.cur.Swap(pending)
	if old.db != nil {
		d.watchers.Flush()
	}
	d.retire(old, true)

	var next *handle
	switch {
	case errors.Is(err, errNotRegular):
		err = fmt.Errorf("sqlite store %s: %w", d.path, err)
	case err != nil:
		err = fmt.Errorf("sqlite store: %w", err)
	default:
		next, err = d.reopen()
	}
	if err != nil {
		next = &handle{err: err}
	}
	d.cur.Store(next)
	close(pending.wait)
}

// reopen opens the file now at the path, as it is: a file that vanished is
// never re-created, not even for the embedded store.
func (d *database) reopen() (*handle, error) {
	fail := func(err error) (*handle, error) {
		return nil, fmt.Errorf("reopening sqlite store %s: %w", d.path, err)
	}
	fi, err := openFile(d.path, false)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout+time.Second)
	defer cancel()
	h, err := d.openHandle(ctx, fi, false)
	if err != nil {
		return fail(err)
	}
	return h, nil
}

// retire closes a pool that is no longer current, once the queries using
// it have ended (or could have: they are bounded by the query timeout).
//
// With moved, the file it is open on is no longer at the path, and SQLite
// does not checkpoint a moved file when it closes, so its -wal (which is
// named after the path) would stay to be read as the next file's: the pool
// first checkpoints it into the old file and truncates it, as SQLite's
// last connection would have done. That is best effort: another process
// still reading the old file can hold it up past the busy timeout.
func (d *database) retire(h *handle, moved bool) error {
	if h == nil || h.db == nil {
		return nil
	}
	d.dropWatchConn(h)
	h.release()
	t := time.NewTimer(d.timeout + time.Second)
	defer t.Stop()
	select {
	case <-h.drained:
	case <-t.C:
	}
	if moved {
		ctx, cancel := context.WithTimeout(context.Background(), d.timeout+time.Second)
		_, _ = h.db.ExecContext(ctx, checkpointSQL)
		cancel()
	}
	h.lookupq.close()
	h.knoxq.close()
	return h.db.Close()
}
