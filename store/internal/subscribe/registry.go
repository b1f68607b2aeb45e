// Package subscribe holds what every store needs to push changes to its
// subscribers (store.Watcher) that is not SQL: the registry of one
// database's subscribers, which runs the database's change loop (a poller,
// a listener) while anyone subscribes, and the list of a module's own
// subscriptions, ended at Cleanup. It knows nothing of Caddy or of any
// database.
package subscribe

import "sync"

// Subscriber is one subscription.
type Subscriber struct {
	// Flush is called on every change, and on every gap in which a change
	// could have been missed. It must be cheap and must not block.
	Flush func()
	// Live tells whether the subscriber holds anything a change could make
	// stale; nil means always.
	Live func() bool
}

// Registry is the set of subscribers of one database, and the loop that
// watches the database for them, which runs while the set is not empty.
// The zero value is an empty, open registry.
type Registry struct {
	mu     sync.Mutex
	subs   map[uint64]Subscriber
	next   uint64
	stop   func() // stops the running loop and waits for it; nil when none runs
	closed bool   // Close was called: nothing is registered again
}

// Add registers sub. When no loop runs, start is called, with the registry
// locked, to start one; it returns the function that stops that loop and
// waits for it to end. The loop may call Flush and Live.
//
// remove unregisters sub; calls after the first do nothing. Removing the
// last subscriber stops the loop, with the registry unlocked, so that a
// loop in the middle of a Flush can finish. On a closed registry Add
// registers nothing, starts nothing, and remove does nothing.
func (r *Registry) Add(sub Subscriber, start func() (stop func())) (remove func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return func() {}
	}
	if r.subs == nil {
		r.subs = make(map[uint64]Subscriber)
	}
	id := r.next
	r.next++
	r.subs[id] = sub
	if r.stop == nil {
		r.stop = start()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			delete(r.subs, id)
			var stop func()
			if len(r.subs) == 0 {
				stop, r.stop = r.stop, nil
			}
			r.mu.Unlock()
			if stop != nil {
				stop()
			}
		})
	}
}

// Flush calls every subscriber's Flush.
func (r *Registry) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.subs {
		s.Flush()
	}
}

// Live reports whether any subscriber holds something a change could make
// stale.
func (r *Registry) Live() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.subs {
		if s.Live == nil || s.Live() {
			return true
		}
	}
	return false
}

// Close drops every subscriber and stops the loop for good, whoever still
// subscribes: the database is gone.
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	clear(r.subs)
	stop := r.stop
	r.stop = nil
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Len is the number of subscribers.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.subs)
}

// Running reports whether a loop runs.
func (r *Registry) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stop != nil
}
