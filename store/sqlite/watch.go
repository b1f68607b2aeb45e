package sqlite

import (
	"context"
	"sync"
	"time"
)

// pollInterval is how often a watched file is checked for commits made by
// other connections and processes (Django, `caddy token`, another Caddy).
const pollInterval = 25 * time.Millisecond

// watchers runs one poller per open file while anyone watches it.
type watchers struct {
	mu   sync.Mutex
	fns  map[int]func()
	next int
	quit chan struct{}
	done chan struct{}
}

// watch registers flush and starts the poller if it is not running.
func (d *database) watch(flush func()) (stop func()) {
	w := &d.watchers
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fns == nil {
		w.fns = make(map[int]func())
	}
	id := w.next
	w.next++
	w.fns[id] = flush
	if w.quit == nil {
		w.quit, w.done = make(chan struct{}), make(chan struct{})
		go d.poll(w.quit, w.done)
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
		f()
	}
}

// poll reads PRAGMA data_version on one dedicated connection: its value
// changes when any other connection commits to the file. A read that fails
// counts as a change, since one could have been missed.
func (d *database) poll(quit, done chan struct{}) {
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
	var last int64 = -1
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		v, err := d.dataVersion(ctx)
		if err != nil || (last >= 0 && v != last) {
			d.watchers.notify()
		}
		if err == nil {
			last = v
		} else {
			last = -1
			d.resetWatchConn()
		}
		select {
		case <-quit:
			return
		case <-tick.C:
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
