package tokenauth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// hashQueuePerSlot bounds the logins that may wait for a password check:
// this many per slot. Past it a login gets 503 with Retry-After at once, so
// a flood of logins costs a bounded wait, never an unbounded queue.
const hashQueuePerSlot = 4

// errHashQueueFull is what a login gets when every slot is busy and the
// queue is full.
var errHashQueueFull = errors.New("too many logins waiting for a password check")

// hashLimiter bounds the password hashes that run at once and the logins
// that wait for one.
type hashLimiter struct {
	slots      chan struct{}
	waiting    atomic.Int64
	maxWaiting int64
}

func newHashLimiter(slots, maxWaiting int) *hashLimiter {
	return &hashLimiter{slots: make(chan struct{}, slots), maxWaiting: int64(maxWaiting)}
}

// hashSlots is the number of password hashes that may run at once: one per
// CPU but one, and at least one, so that a flood of logins always leaves a
// core to the requests that carry a token.
func hashSlots() int {
	return max(runtime.GOMAXPROCS(0)-1, 1)
}

// passwordHashers is the process's one limiter, shared by every handler
// and config, made on first use (after Caddy has set GOMAXPROCS).
var passwordHashers = sync.OnceValue(func() *hashLimiter {
	n := hashSlots()
	return newHashLimiter(n, hashQueuePerSlot*n)
})

// run calls f while holding a slot. It waits for one while the queue has
// room, until ctx ends; otherwise it returns errHashQueueFull at once.
func (l *hashLimiter) run(ctx context.Context, f func()) error {
	select {
	case l.slots <- struct{}{}:
	default:
		if l.waiting.Add(1) > l.maxWaiting {
			l.waiting.Add(-1)
			return errHashQueueFull
		}
		select {
		case l.slots <- struct{}{}:
			l.waiting.Add(-1)
		case <-ctx.Done():
			l.waiting.Add(-1)
			return fmt.Errorf("waiting to check a password: %w", ctx.Err())
		}
	}
	defer func() { <-l.slots }()
	f()
	return nil
}
