package sqlite

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/tokenauth/caddy-tokenauth/store/internal/subscribe"
)

// pollInterval is how often a watched file is checked for commits made by
// other connections and processes (Django, `caddy token`, another Caddy),
// and how often, at most, any store file is checked for having been
// replaced or removed.
const pollInterval = 25 * time.Millisecond

// firstReadTimeout bounds the read of the starting version in Provision.
const firstReadTimeout = 250 * time.Millisecond

// watchers are the subscribers of one open file, and its poller, which
// runs while anyone watches.
type watchers struct {
	subscribe.Registry
	polls atomic.Int64 // PRAGMA data_version reads, for tests
}

// watch registers flush and starts the poller if it is not running.
func (d *database) watch(flush func(), live func() bool) (stop func()) {
	return d.watchers.Add(subscribe.Subscriber{Flush: flush, Live: live}, func() func() {
		quit, done := make(chan struct{}), make(chan struct{})
		v, h := d.firstVersion()
		go d.poll(v, h, quit, done)
		return func() {
			close(quit)
			<-done
		}
	})
}

// firstVersion reads the version the poller starts from, before anyone
// could cache anything under it, so that starting flushes nothing and
// nothing flushes later for a commit made before the watch began. It
// returns -1 if the file cannot be read in firstReadTimeout: a locked file
// must not hold up Provision, and the poller then counts its own first
// read as a change. It also returns the pool the version was read on.
func (d *database) firstVersion() (int64, *handle) {
	ctx, cancel := context.WithTimeout(context.Background(), firstReadTimeout)
	defer cancel()
	v, h, err := d.dataVersion(ctx)
	if err != nil {
		d.resetWatchConn()
		return -1, nil
	}
	return v, h
}

// poll reads PRAGMA data_version on one dedicated connection: its value
// changes when any other connection commits to the file. A read that fails
// counts as a change, since one could have been missed; so does a first
// read after last is -1, since a subscriber may have cached something
// before it, and a read on another pool than the last one (the file was
// replaced: versions of two files do not compare).
//
// Before each read it checks that the file at the path is still the one
// the pool is open on (see checkFile): a cache that answers from memory
// sends no query that would check it.
//
// Once it has a version, and while no subscriber is live (every cached
// entry has expired), the poller skips the read, which would cost an idle
// server a fraction of a millisecond of CPU 40 times a second. It keeps the
// last version read, so the first read after the pause still sees a change
// made during it.
func (d *database) poll(last int64, lastH *handle, quit, done chan struct{}) {
	defer close(done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-quit:
			return
		case <-tick.C:
		}
		if last < 0 || d.watchers.Live() {
			d.checkFile(true)
			v, h, err := d.dataVersion(ctx)
			if err != nil || v != last || h != lastH {
				d.watchers.Flush()
			}
			if err == nil {
				last, lastH = v, h
			} else {
				last, lastH = -1, nil
				d.resetWatchConn()
			}
		}
	}
}

// dataVersion reads PRAGMA data_version on the poller's connection, taken
// from the current pool (never waiting for one being opened), and returns
// the pool it read on.
func (d *database) dataVersion(ctx context.Context) (int64, *handle, error) {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	if d.watchConn != nil && d.watchH != d.cur.Load() {
		d.closeWatchConnLocked()
	}
	if d.watchConn == nil {
		h, err := d.acquire(ctx, false)
		if err != nil {
			return 0, nil, err
		}
		c, err := h.db.Conn(ctx)
		if err != nil {
			h.release()
			return 0, nil, err
		}
		d.watchConn, d.watchH = c, h
	}
	d.watchers.polls.Add(1)
	var v int64
	err := d.watchConn.QueryRowContext(ctx, dataVersionSQL).Scan(&v)
	return v, d.watchH, err
}

// resetWatchConn gives the poller's connection back, so that its next read
// takes a new one.
func (d *database) resetWatchConn() {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	d.closeWatchConnLocked()
}

// dropWatchConn gives the poller's connection back if it belongs to h.
func (d *database) dropWatchConn(h *handle) {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	if d.watchH == h {
		d.closeWatchConnLocked()
	}
}

func (d *database) closeWatchConnLocked() {
	if d.watchConn != nil {
		d.watchConn.Close()
		d.watchH.release()
		d.watchConn, d.watchH = nil, nil
	}
}
