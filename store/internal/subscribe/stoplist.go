package subscribe

import "sync"

// StopList collects the stop functions of one store module's watches, so
// that its Cleanup ends those still running. The zero value is empty.
type StopList struct {
	mu  sync.Mutex
	fns []func()
}

// Add adds a watch's stop function.
func (l *StopList) Add(stop func()) {
	l.mu.Lock()
	l.fns = append(l.fns, stop)
	l.mu.Unlock()
}

// StopAll calls every stop function added since the last StopAll, once, in
// the order they were added, with the list unlocked. A nil list is empty.
func (l *StopList) StopAll() {
	if l == nil {
		return
	}
	l.mu.Lock()
	fns := l.fns
	l.fns = nil
	l.mu.Unlock()
	for _, stop := range fns {
		stop()
	}
}
