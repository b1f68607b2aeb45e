package sqlite

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// pollInterval is how often a watched file is checked for commits made by
// other connections and processes (Django, `caddy token`, another Caddy).
const pollInterval = 25 * time.Millisecond

// firstReadTimeout bounds the read of the starting version in Provision.
const firstReadTimeout = 250 * time.Millisecond

// watchers runs one poller per open file while anyone watches it.
type watchers struct {
	mu    sync.Mutex
	fns   map[int]watcher
	next  int
	quit  chan struct{}
	done  chan struct{}
	polls atomic.Int64 // PRAGMA data_version reads, for tests
}

// watcher is one subscription: flush on a change; live tells whether it
// holds anything a change could make stale (nil: always).
type watcher struct {
	flush func()
	live  func() bool
}

// watch registers flush and starts the poller if it is not running.
func (d *database) watch(flush func(), live func() bool) (stop func()) {
	w := &d.watchers
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fns == nil {
		w.fns = make(map[int]watcher)
	}
	id := w.next
	w.next++
	w.fns[id] = watcher{flush, live}
	if w.quit == nil {
		w.quit, w.done = make(chan struct{}), make(chan struct{})
		go d.poll(d.firstVersion(), w.quit, w.done)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			delete(w.fns, id)
			var quit, done chan struct{}
			if len(w.fns) == 0 && w.quit != nil {
				quit, done = w.quit, w.done
				w.quit, w.done = nil, nil
			}
			w.mu.Unlock()
			if quit != nil {
				close(quit)
				<-done
			}
		})
	}
}

// notify calls every registered flush.
func (w *watchers) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.fns {
		f.flush()
	}
}

// live reports whether any subscriber holds something a change could make
// stale.
func (w *watchers) live() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.fns {
		if f.live == nil || f.live() {
			return true
		}
	}
	return false
}

// firstVersion reads the version the poller starts from, before anyone
// could cache anything under it, so that starting flushes nothing and
// nothing flushes later for a commit made before the watch began. It
// returns -1 if the file cannot be read in firstReadTimeout: a locked file
// must not hold up Provision, and the poller then counts its own first
// read as a change.
func (d *database) firstVersion() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), firstReadTimeout)
	defer cancel()
	v, err := d.dataVersion(ctx)
	if err != nil {
		d.resetWatchConn()
		return -1
	}
	return v
}

// poll reads PRAGMA data_version on one dedicated connection: its value
// changes when any other connection commits to the file. A read that fails
// counts as a change, since one could have been missed; so does a first
// read after last is -1, since a subscriber may have cached something
// before it.
//
// Once it has a version, and while no subscriber is live (every cached
// entry has expired), the poller skips the read, which would cost an idle
// server a fraction of a millisecond of CPU 40 times a second. It keeps the
// last version read, so the first read after the pause still sees a change
// made during it.
func (d *database) poll(last int64, quit, done chan struct{}) {
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
		if last < 0 || d.watchers.live() {
			v, err := d.dataVersion(ctx)
			if err != nil || v != last {
				d.watchers.notify()
			}
			if err == nil {
				last = v
			} else {
				last = -1
				d.resetWatchConn()
			}
		}
	}
}

func (d *database) dataVersion(ctx context.Context) (int64, error) {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	if d.watchConn == nil {
		c, err := d.db.Conn(ctx)
		if err != nil {
			return 0, err
		}
		d.watchConn = c
	}
	d.watchers.polls.Add(1)
	var v int64
	err := d.watchConn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v)
	return v, err
}

func (d *database) resetWatchConn() {
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	if d.watchConn != nil {
		d.watchConn.Close()
		d.watchConn = nil
	}
}
