package subscribe

import (
	"sync/atomic"
	"testing"
)

// loop is a fake change loop: it counts its starts and stops.
type loop struct{ starts, stops atomic.Int64 }

func (l *loop) start() func() {
	l.starts.Add(1)
	return func() { l.stops.Add(1) }
}

func TestLoopRunsWhileAnyoneSubscribes(t *testing.T) {
	var r Registry
	var l loop
	remove1 := r.Add(Subscriber{Flush: func() {}}, l.start)
	remove2 := r.Add(Subscriber{Flush: func() {}}, l.start)
	if l.starts.Load() != 1 || !r.Running() || r.Len() != 2 {
		t.Fatalf("two subscribers: %d starts, running %v, %d registered; want 1, true, 2", l.starts.Load(), r.Running(), r.Len())
	}
	remove1()
	remove1() // a second call does nothing
	if l.stops.Load() != 0 || !r.Running() || r.Len() != 1 {
		t.Fatalf("one left: %d stops, running %v, %d registered; want 0, true, 1", l.stops.Load(), r.Running(), r.Len())
	}
	remove2()
	if l.stops.Load() != 1 || r.Running() || r.Len() != 0 {
		t.Fatalf("none left: %d stops, running %v, %d registered; want 1, false, 0", l.stops.Load(), r.Running(), r.Len())
	}
	remove3 := r.Add(Subscriber{Flush: func() {}}, l.start)
	if l.starts.Load() != 2 {
		t.Fatalf("a subscriber after the last left: %d starts, want 2", l.starts.Load())
	}
	remove3()
}

func TestFlushCallsEverySubscriberUntilRemoved(t *testing.T) {
	var r Registry
	var l loop
	var a, b atomic.Int64
	removeA := r.Add(Subscriber{Flush: func() { a.Add(1) }}, l.start)
	removeB := r.Add(Subscriber{Flush: func() { b.Add(1) }}, l.start)
	r.Flush()
	removeA()
	r.Flush()
	if a.Load() != 1 || b.Load() != 2 {
		t.Errorf("flushes: a %d, b %d; want 1, 2", a.Load(), b.Load())
	}
	removeB()
}

func TestLiveIsAnySubscriberLive(t *testing.T) {
	var r Registry
	var l loop
	if r.Live() {
		t.Fatal("an empty registry is live")
	}
	var live atomic.Bool
	remove := r.Add(Subscriber{Flush: func() {}, Live: live.Load}, l.start)
	if r.Live() {
		t.Error("live with its only subscriber not live")
	}
	live.Store(true)
	if !r.Live() {
		t.Error("not live with a live subscriber")
	}
	live.Store(false)
	removeNil := r.Add(Subscriber{Flush: func() {}}, l.start) // Live nil: always live
	if !r.Live() {
		t.Error("not live with a subscriber whose Live is nil")
	}
	removeNil()
	remove()
}

func TestCloseStopsTheLoopAndRefusesNewSubscribers(t *testing.T) {
	var r Registry
	var l loop
	var flushed atomic.Int64
	remove := r.Add(Subscriber{Flush: func() { flushed.Add(1) }}, l.start) // never removed before Close
	r.Close()
	if l.stops.Load() != 1 || r.Running() || r.Len() != 0 {
		t.Fatalf("after Close: %d stops, running %v, %d registered; want 1, false, 0", l.stops.Load(), r.Running(), r.Len())
	}
	later := r.Add(Subscriber{Flush: func() { flushed.Add(1) }}, l.start)
	if l.starts.Load() != 1 || r.Running() || r.Len() != 0 {
		t.Errorf("Add after Close: %d starts, running %v, %d registered; want 1, false, 0", l.starts.Load(), r.Running(), r.Len())
	}
	r.Flush()
	if flushed.Load() != 0 {
		t.Errorf("%d flushes after Close, want 0", flushed.Load())
	}
	later()
	remove()
	if l.stops.Load() != 1 {
		t.Errorf("removes after Close stopped the loop again: %d stops", l.stops.Load())
	}
}

// A loop may flush while the last subscriber leaves: stopping it must not
// wait with the registry locked.
func TestRemoveStopsTheLoopUnlocked(t *testing.T) {
	var r Registry
	stopped := make(chan struct{})
	remove := r.Add(Subscriber{Flush: func() {}}, func() func() {
		return func() {
			r.Flush() // what a loop finishing its last round does
			close(stopped)
		}
	})
	remove()
	<-stopped
}
