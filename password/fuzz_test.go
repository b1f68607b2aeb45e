package password

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fuzzLimits keep every value the fuzzer makes to milliseconds.
var fuzzLimits = limits{
	pbkdf2Iterations: 2000,
	bcryptCost:       5,
	scryptN:          1024,
	scryptWork:       1 << 12,
	scryptMemory:     1 << 20,
	argon2Memory:     1024,
	argon2Time:       4,
	argon2Threads:    8,
	argon2Work:       4096,
	argon2KeyLen:     1024,
}

// fuzzCanonical maps a (raw, encoded) pair to the form in which equivalent
// pairs are equal, so that the fuzzer's legitimate variations of a seed are
// recognised: bcrypt's $2a$/$2y$ prefixes are $2b$'s and it reads only 72
// bytes of the password; "md5$$<hex>" is "<hex>"; and HMAC pads keys with
// zero bytes, so pbkdf2 and scrypt cannot tell trailing NULs (in Django
// neither).
func fuzzCanonical(raw, encoded string) string {
	switch {
	case strings.HasPrefix(encoded, "bcrypt$$") && len(encoded) > 12:
		encoded = "bcrypt$$2b" + encoded[10:]
		if len(raw) > 72 {
			raw = raw[:72]
		}
	case strings.HasPrefix(encoded, "bcrypt_sha256$$") && len(encoded) > 19:
		encoded = "bcrypt_sha256$$2b" + encoded[17:]
	case len(encoded) == 37 && strings.HasPrefix(encoded, "md5$$"):
		encoded = encoded[5:]
	case strings.HasPrefix(encoded, "pbkdf2_") || strings.HasPrefix(encoded, "scrypt$"):
		if len(raw) <= 64 {
			raw = strings.TrimRight(raw, "\x00")
		}
	}
	return raw + "\x00\x00" + encoded
}

// Check never panics, stays fast within the limits, and accepts only pairs
// a hasher made: the seeds with their passwords (up to fuzzCanonical).
func FuzzCheck(f *testing.F) {
	known := map[string]bool{}
	add := func(raw, encoded string) {
		f.Add(raw, encoded)
		known[fuzzCanonical(raw, encoded)] = true
	}
	data, err := os.ReadFile(filepath.Join("testdata", "django_vectors.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range loadVectors(f, data).Vectors {
		if !expensive(v.Encoded) && !strings.Contains(v.Encoded, "m=1024,t=3") {
			add(v.Password, v.Encoded)
		}
	}
	for _, tt := range publishedVectors {
		f.Add("password", tt.encoded) // beyond fuzzLimits: rejected
	}
	for _, e := range []string{"", "!", "$", "$$", "$$$$$", "md5$$", "sha1$$", "argon2$argon2id$v=19$m=8,t=1,p=1$$", "bcrypt$$2b$04$", "scrypt$2$s$1$1$"} {
		f.Add("password", e)
	}

	savedLimits, savedDummy, savedHarden := maxCost, dummyEncoded, hardenIterations
	maxCost, hardenIterations = fuzzLimits, 1
	dummyEncoded = "pbkdf2_sha256$1$" + Salt() + "$" + randomKeyB64(32)
	f.Cleanup(func() { maxCost, dummyEncoded, hardenIterations = savedLimits, savedDummy, savedHarden })

	f.Fuzz(func(t *testing.T, raw, encoded string) {
		maxCost = defaultLimits
		decode(encoded) // parsing alone, with the real limits
		maxCost = fuzzLimits

		start := time.Now()
		ok, mustUpdate := Check(raw, encoded)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Check(%q, %q) took %v", raw, encoded, d)
		}
		if mustUpdate && !ok {
			t.Errorf("Check(%q, %q): mustUpdate without a match", raw, encoded)
		}
		if ok && !known[fuzzCanonical(raw, encoded)] {
			t.Errorf("Check(%q, %q) matched a value no hasher made for that password", raw, encoded)
		}
	})
}
