package password

// limits caps the cost parameters read from a stored value, so that a
// crafted value in the database cannot make one check run for minutes or
// allocate gigabytes. A value beyond a limit never matches.
type limits struct {
	pbkdf2Iterations int    // PBKDF2 iterations
	bcryptCost       int    // bcrypt log2 rounds (bcrypt itself allows 4–31)
	scryptN          int    // scrypt N (a power of two)
	scryptWork       int    // scrypt N·r·p
	scryptMemory     int    // scrypt bytes: 128·r·(N+p)
	argon2Memory     uint32 // argon2 m, KiB
	argon2Time       uint32 // argon2 t
	argon2Threads    uint32 // argon2 p
	argon2Work       uint64 // argon2 m·t, KiB processed
	argon2KeyLen     int    // argon2 hash length, bytes
}

// defaultLimits allow every value Django writes by default (a check at the
// defaults costs about 1 s for pbkdf2_sha256, 0.25 s for bcrypt cost 12)
// with room for deliberately stronger settings, and keep a hostile value to
// a few seconds and at most 1 GiB.
var defaultLimits = limits{
	pbkdf2Iterations: 10_000_000,
	bcryptCost:       16,
	scryptN:          1 << 20,
	scryptWork:       1 << 24,
	scryptMemory:     256 << 20,
	argon2Memory:     1 << 20, // 1 GiB
	argon2Time:       100,
	argon2Threads:    255,
	argon2Work:       1 << 22, // e.g. 1 GiB × 4 passes, or 100 MiB × 40
	argon2KeyLen:     1024,
}

// maxCost is the limits in force; tests lower them.
var maxCost = defaultLimits
