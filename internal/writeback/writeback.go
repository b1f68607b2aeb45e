// Package writeback writes values off the request path: Put records the
// latest value of a key and returns at once; one goroutine writes what is
// pending, each key once however many Puts came since its last write, and
// retries a failed write unless a newer value came meanwhile. It knows a
// write function, not what it writes to.
package writeback

import (
	"context"
	"sync"
	"time"
)

// Queue coalesces writes by key. It is safe for concurrent use.
type Queue[K comparable, V any] struct {
	write   func(ctx context.Context, k K, v V) error
	failed  func(err error)
	timeout time.Duration
	retry   time.Duration

	mu      sync.Mutex
	pending map[K]V
	closed  bool
	wake    chan struct{}
	done    chan struct{}
}

// New starts a queue that calls write for each pending key, each call
// bounded by timeout; a failed write is reported to failed (which may be
// nil) and tried again after retry.
func New[K comparable, V any](write func(ctx context.Context, k K, v V) error, failed func(error), timeout, retry time.Duration) *Queue[K, V] {
	q := &Queue[K, V]{
		write:   write,
		failed:  failed,
		timeout: timeout,
		retry:   retry,
		pending: make(map[K]V),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go q.run()
	return q
}

// Put records v as the value to write for k, replacing one not yet
// written. After Close it writes v at once, in the caller's goroutine.
func (q *Queue[K, V]) Put(k K, v V) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.writeOne(k, v)
		return
	}
	q.pending[k] = v
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Pending is the number of keys waiting to be written.
func (q *Queue[K, V]) Pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

func (q *Queue[K, V]) run() {
	defer close(q.done)
	var retry <-chan time.Time
	for {
		select {
		case <-q.wake:
		case <-retry:
		}
		retry = nil
		q.mu.Lock()
		batch, closed := q.pending, q.closed
		q.pending = make(map[K]V)
		q.mu.Unlock()
		failedAny := false
		for k, v := range batch {
			if !q.writeOne(k, v) {
				failedAny = true
				q.mu.Lock()
				if _, newer := q.pending[k]; !newer && !closed {
					q.pending[k] = v
				}
				q.mu.Unlock()
			}
		}
		if closed {
			return
		}
		if failedAny {
			retry = time.After(q.retry)
		}
	}
}

func (q *Queue[K, V]) writeOne(k K, v V) bool {
	ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
	defer cancel()
	if err := q.write(ctx, k, v); err != nil {
		if q.failed != nil {
			q.failed(err)
		}
		return false
	}
	return true
}

// Close writes what is pending, once, and stops the queue; later Puts
// write at once. It returns when the last pending write is done.
func (q *Queue[K, V]) Close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		<-q.done
		return
	}
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	<-q.done
}
