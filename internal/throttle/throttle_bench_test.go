package throttle

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenauth/caddy-tokenauth/internal/drf"
)

// BenchmarkThrottleMemory fills a throttle at the default bound beyond it
// and reports the heap it then holds: per client and in total.
func BenchmarkThrottleMemory(b *testing.B) {
	fills := []struct {
		name    string
		num     int
		client  func(int) string
		perUser int // times each client records
	}{
		{"ipv4", 1, ipv4Client, 1},
		{"ipv6", 1, ipv6Client, 1},
		{"ipv6-3-each", 3, ipv6Client, 3},
		{"ip:port", 1, func(i int) string { return ipv6Client(i) + ":443" }, 1},
	}
	for _, f := range fills {
		b.Run(f.name, func(b *testing.B) {
			var perClient, total float64
			for n := 0; n < b.N; n++ {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				th := New(drf.Rate{Num: f.num, Period: time.Hour})
				for i := 0; i < (defaultMaxEntries+defaultMaxEntries/8)/f.perUser; i++ {
					key := f.client(i)
					for j := 0; j < f.perUser; j++ {
						th.Record(key)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				_, clients := throttleSize(th)
				runtime.KeepAlive(th)
				grown := float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
				perClient += grown / float64(clients)
				total += grown
			}
			b.ReportMetric(perClient/float64(b.N), "B/client")
			b.ReportMetric(total/float64(b.N)/(1<<20), "MB-at-cap")
		})
	}
}

// BenchmarkThrottleEvictionAtCap counts new clients into a throttle already
// at its default bound, so every call has to free room, while another
// goroutine asks for waits. It reports the slowest call of each, the
// 99.99th percentile and how many calls took over 1 ms (wall time, so a
// busy machine shows its own stalls too).
func BenchmarkThrottleEvictionAtCap(b *testing.B) {
	th := New(drf.Rate{Num: 1, Period: time.Hour})
	for i := 0; i < defaultMaxEntries; i++ {
		th.Record(ipv6Client(i))
	}
	var stop atomic.Bool
	var waits latencies
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			start := time.Now()
			th.Wait(ipv4Client(i % 4096))
			waits.add(time.Since(start))
		}
	}()
	var records latencies
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		th.Record(ipv6Client(defaultMaxEntries + i))
		records.add(time.Since(start))
	}
	b.StopTimer()
	stop.Store(true)
	wg.Wait()
	records.report(b, "record")
	waits.report(b, "wait")
}

// latencies keeps a histogram of call times in microseconds.
type latencies struct {
	n     int
	worst time.Duration
	us    [1001]int // the last bucket holds 1 ms and more
}

func (l *latencies) add(d time.Duration) {
	l.n++
	l.worst = max(l.worst, d)
	l.us[min(int(d/time.Microsecond), len(l.us)-1)]++
}

func (l *latencies) report(b *testing.B, name string) {
	p, seen := 0, 0
	for p < len(l.us)-1 && seen+l.us[p] < l.n-l.n/10000 {
		seen += l.us[p]
		p++
	}
	b.ReportMetric(float64(l.worst.Nanoseconds()), "max-"+name+"-ns")
	b.ReportMetric(float64(p), "p99.99-"+name+"-µs")
	b.ReportMetric(float64(l.us[len(l.us)-1]), name+"s-over-1ms")
}

// BenchmarkThrottleAllow is the request path: a login budget checked by
// many clients at once.
func BenchmarkThrottleAllow(b *testing.B) {
	th := New(drf.Rate{Num: 1 << 30, Period: time.Minute})
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = ipv4Client(i)
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1000))
		for pb.Next() {
			th.Allow(keys[i%len(keys)])
			i++
		}
	})
}
