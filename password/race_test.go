//go:build race

package password

// raceEnabled reports whether the race detector is on: it makes the hashers
// several times slower, and the slow tests scale down.
const raceEnabled = true
