package cache

import (
	"container/list"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// The cache structure was chosen by these benchmarks: the sharded map of
// cache.go against the two usual alternatives, an LRU behind one mutex
// (the design of hashicorp/golang-lru) and sync.Map (a concurrent hash
// trie since Go 1.24), on a hit, from every core at once, and for memory.
//
//	go test -run '^$' -bench CacheStructure -benchmem ./internal/cache

type structure interface {
	get(key string) (testValue, bool)
	put(key string, v testValue)
}

type shardedStructure struct{ c *Cache[testValue] }

func (s shardedStructure) get(key string) (testValue, bool) {
	v, _, found := s.c.Get(key)
	return v, found
}
func (s shardedStructure) put(key string, v testValue) { s.c.put(key, s.c.gen.Load(), &v) }

// lruStructure is golang-lru's design: a map into a list, one mutex, and
// every hit moves its entry to the front.
type lruStructure struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[string]*list.Element
}

type lruEntry struct {
	key string
	v   testValue
}

func newLRU(max int) *lruStructure {
	return &lruStructure{max: max, ll: list.New(), items: make(map[string]*list.Element)}
}

func (l *lruStructure) get(key string) (testValue, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.items[key]; ok {
		l.ll.MoveToFront(e)
		return e.Value.(*lruEntry).v, true
	}
	return testValue{}, false
}

func (l *lruStructure) put(key string, v testValue) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.items[key]; ok {
		e.Value.(*lruEntry).v = v
		l.ll.MoveToFront(e)
		return
	}
	l.items[key] = l.ll.PushFront(&lruEntry{key, v})
	if l.ll.Len() > l.max {
		last := l.ll.Back()
		l.ll.Remove(last)
		delete(l.items, last.Value.(*lruEntry).key)
	}
}

type syncMapStructure struct{ m sync.Map }

func (s *syncMapStructure) get(key string) (testValue, bool) {
	v, ok := s.m.Load(key)
	if !ok {
		return testValue{}, false
	}
	return v.(testValue), true
}
func (s *syncMapStructure) put(key string, v testValue) { s.m.Store(key, v) }

func structures(size int) map[string]func() structure {
	return map[string]func() structure{
		"sharded": func() structure { return shardedStructure{New[testValue](time.Hour, time.Hour, size, errNotFound)} },
		"lru":     func() structure { return newLRU(size) },
		"syncmap": func() structure { return new(syncMapStructure) },
	}
}

func testIdentity(i int) testValue {
	return identity(fmt.Sprint(i+1), fmt.Sprintf("user%07d", i))
}

// BenchmarkCacheStructureHit: hits on a working set of 1000 tokens from
// every core.
func BenchmarkCacheStructureHit(b *testing.B) {
	const n = 1000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = randomKey(i)
	}
	for _, name := range []string{"sharded", "lru", "syncmap"} {
		b.Run(name, func(b *testing.B) {
			s := structures(100_000)[name]()
			for i, k := range keys {
				s.put(k, testIdentity(i))
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, ok := s.get(keys[i%n]); !ok {
						b.Fatal("miss")
					}
					i++
				}
			})
		})
	}
}

// BenchmarkCacheStructureMemory: heap bytes per identity with 1,000,000.
func BenchmarkCacheStructureMemory(b *testing.B) {
	const n = 1_000_000
	for _, name := range []string{"sharded", "lru", "syncmap"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				s := structures(n)[name]()
				for i := 0; i < n; i++ {
					s.put(randomKey(i), testIdentity(i))
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/entry")
				runtime.KeepAlive(s)
			}
		})
	}
}
