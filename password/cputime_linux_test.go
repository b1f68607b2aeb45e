package password

import (
	"syscall"
	"time"
)

// threadCPUTime is the CPU time of the calling OS thread (the caller locks
// it): work done, unaffected by other processes on a busy machine.
func threadCPUTime() time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return time.Duration(time.Now().UnixNano())
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
