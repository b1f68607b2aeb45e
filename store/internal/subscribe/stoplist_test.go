package subscribe

import (
	"reflect"
	"testing"
)

func TestStopAllStopsEachOnceInOrder(t *testing.T) {
	var l StopList
	var got []int
	for i := range 3 {
		l.Add(func() { got = append(got, i) })
	}
	l.StopAll()
	l.StopAll() // nothing left to stop
	if want := []int{0, 1, 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("stops = %v, want %v", got, want)
	}
	l.Add(func() { got = append(got, 3) })
	l.StopAll()
	if want := []int{0, 1, 2, 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("stops after a new Add = %v, want %v", got, want)
	}
}

// A stop function may take the time it needs and add to the list (a
// watch started while others stop): the list is not locked meanwhile.
func TestStopAllRunsUnlocked(t *testing.T) {
	var l StopList
	added := false
	l.Add(func() { l.Add(func() { added = true }) })
	l.StopAll()
	if added {
		t.Fatal("a stop added during StopAll ran in the same StopAll")
	}
	l.StopAll()
	if !added {
		t.Error("a stop added during StopAll was lost")
	}
}

func TestNilListIsEmpty(t *testing.T) {
	var l *StopList
	l.StopAll()
}
