package tokenauth

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// The process runs one password hash per CPU but one, at least one: a
// flood of logins always leaves a core to the other requests.
func TestHashSlotsLeaveACore(t *testing.T) {
	for _, tt := range []struct{ procs, want int }{{1, 1}, {2, 1}, {4, 3}, {16, 15}} {
		prev := runtime.GOMAXPROCS(tt.procs)
		got := hashSlots()
		runtime.GOMAXPROCS(prev)
		if got != tt.want {
			t.Errorf("GOMAXPROCS %d: %d hashing slots, want %d", tt.procs, got, tt.want)
		}
	}
	l := passwordHashers()
	if cap(l.slots) != hashSlots() || l.maxWaiting != int64(hashQueuePerSlot*hashSlots()) {
		t.Fatalf("the process's limiter has %d slots and a queue of %d, want %d and %d",
			cap(l.slots), l.maxWaiting, hashSlots(), hashQueuePerSlot*hashSlots())
	}
}

// At most slots hashes run at once; up to maxWaiting more wait; beyond
// that a login is refused at once with errHashQueueFull; a waiter whose
// request ends stops waiting.
func TestHashLimiterBoundsRunningAndWaiting(t *testing.T) {
	const slots, queue = 2, 3
	l := newHashLimiter(slots, queue)
	release := make(chan struct{})
	started := make(chan struct{}, slots+queue)
	var running, most int
	var mu sync.Mutex
	work := func() {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		started <- struct{}{}
		<-release
		mu.Lock()
		running--
		mu.Unlock()
	}
	var wg sync.WaitGroup
	errs := make(chan error, slots+queue)
	for range slots {
		wg.Go(func() { errs <- l.run(context.Background(), work) })
	}
	for range slots {
		<-started
	}
	for range queue {
		wg.Go(func() { errs <- l.run(context.Background(), work) })
	}
	for deadline := time.Now().Add(10 * time.Second); l.waiting.Load() < queue; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d waiting, want %d", l.waiting.Load(), queue)
		}
	}
	// The queue is full: the next one is refused without waiting.
	// (Bounded, so that a queue that never says no fails here, not hangs.)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.run(ctx, func() { t.Error("ran past a full queue") }); !errors.Is(err, errHashQueueFull) {
		t.Fatalf("past a full queue: %v, want errHashQueueFull", err)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if most != slots {
		t.Fatalf("%d hashes ran at once, want %d", most, slots)
	}
	if l.waiting.Load() != 0 || len(l.slots) != 0 {
		t.Fatalf("after all: %d waiting, %d slots held", l.waiting.Load(), len(l.slots))
	}
}

// A login waiting for a slot stops waiting when its request ends.
func TestHashLimiterWaitEndsWithTheRequest(t *testing.T) {
	l := newHashLimiter(1, 1)
	release, started := make(chan struct{}), make(chan struct{})
	go l.run(context.Background(), func() { close(started); <-release })
	<-started
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.run(ctx, func() { t.Error("ran after its request ended") }) }()
	for deadline := time.Now().Add(10 * time.Second); l.waiting.Load() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the waiter never queued")
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("a waiter whose request ended: %v, want context.Canceled", err)
	}
	if l.waiting.Load() != 0 {
		t.Fatalf("%d still waiting", l.waiting.Load())
	}
}
