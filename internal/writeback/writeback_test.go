package writeback

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type recorder struct {
	mu     sync.Mutex
	writes map[string][]int
	fail   map[string]int // failures left per key
	block  chan struct{}
}

func (r *recorder) write(_ context.Context, k string, v int) error {
	if r.block != nil {
		<-r.block
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail[k] > 0 {
		r.fail[k]--
		return errors.New("down")
	}
	r.writes[k] = append(r.writes[k], v)
	return nil
}

func (r *recorder) get(k string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.writes[k]...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Puts of one key while a write is under way coalesce: the key is written
// once more, with the latest value.
func TestPutsCoalesceToTheLatestValue(t *testing.T) {
	r := &recorder{writes: map[string][]int{}, block: make(chan struct{})}
	q := New(r.write, nil, time.Second, time.Millisecond)
	q.Put("a", 1)
	waitFor(t, "the first write to start", func() bool { return q.Pending() == 0 })
	for i := 2; i <= 100; i++ {
		q.Put("a", i)
	}
	close(r.block)
	waitFor(t, "two writes", func() bool { return len(r.get("a")) == 2 })
	q.Close()
	if got := r.get("a"); len(got) != 2 || got[0] != 1 || got[1] != 100 {
		t.Fatalf("writes of a: %v, want [1 100]", got)
	}
}

// A failed write is reported and tried again, unless a newer value came.
func TestAFailedWriteIsRetried(t *testing.T) {
	r := &recorder{writes: map[string][]int{}, fail: map[string]int{"a": 2}}
	var mu sync.Mutex
	var errs int
	q := New(r.write, func(error) { mu.Lock(); errs++; mu.Unlock() }, time.Second, time.Millisecond)
	defer q.Close()
	q.Put("a", 7)
	waitFor(t, "the write after two failures", func() bool { return len(r.get("a")) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if errs != 2 || r.get("a")[0] != 7 {
		t.Fatalf("%d failures reported, writes %v; want 2 and [7]", errs, r.get("a"))
	}
}

// Close writes what is pending before it returns; a Put after Close
// writes at once.
func TestCloseWritesWhatIsPending(t *testing.T) {
	r := &recorder{writes: map[string][]int{}, block: make(chan struct{})}
	q := New(r.write, nil, time.Second, time.Hour)
	q.Put("a", 1)
	waitFor(t, "the first write to start", func() bool { return q.Pending() == 0 })
	q.Put("b", 2)
	q.Put("c", 3)
	go func() { time.Sleep(10 * time.Millisecond); close(r.block) }()
	q.Close()
	for k, want := range map[string]int{"a": 1, "b": 2, "c": 3} {
		if got := r.get(k); len(got) != 1 || got[0] != want {
			t.Errorf("writes of %s: %v, want [%d]", k, got, want)
		}
	}
	q.Put("d", 4)
	if got := r.get("d"); len(got) != 1 {
		t.Errorf("a Put after Close: writes %v", got)
	}
	q.Close() // a second Close returns
}
