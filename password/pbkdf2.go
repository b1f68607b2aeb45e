// Package password makes and checks passwords in the formats Django stores
// in auth_user.password.
package password

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultIterations is Django 5.2's PBKDF2 iteration count.
const DefaultIterations = 1_000_000

// saltChars is Django's RANDOM_STRING_CHARS.
const saltChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// Salt returns 22 random characters from saltChars: Django's 128 bits of
// salt entropy.
func Salt() string {
	return randomString(22)
}

func randomString(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = saltChars[randIndex(len(saltChars))]
	}
	return string(b)
}

// randIndex returns a uniform random index below n (n ≤ 256) without
// modulo bias.
func randIndex(n int) int {
	limit := 256 - 256%n
	var b [1]byte
	for {
		_, _ = rand.Read(b[:])
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// EncodePBKDF2SHA256 encodes raw as Django's PBKDF2PasswordHasher does:
// pbkdf2_sha256$<iterations>$<salt>$<base64 of the 32-byte key>.
func EncodePBKDF2SHA256(raw, salt string, iterations int) (string, error) {
	dk, err := pbkdf2Key(sha256.New, raw, []byte(salt), iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("pbkdf2_sha256: %w", err)
	}
	return "pbkdf2_sha256$" + strconv.Itoa(iterations) + "$" + salt + "$" + base64.StdEncoding.EncodeToString(dk), nil
}

// Make encodes raw with Django's default hasher, a fresh salt and the given
// iteration count (DefaultIterations when iterations ≤ 0).
func Make(raw string, iterations int) (string, error) {
	if iterations <= 0 {
		iterations = DefaultIterations
	}
	return EncodePBKDF2SHA256(raw, Salt(), iterations)
}

// pbkdf2Key derives every PBKDF2 key of the package; a variable so that a
// test can count the iterations a check runs.
var pbkdf2Key = pbkdf2.Key[hash.Hash]

// hardenIterations is the iteration count a wrong password against a
// weaker pbkdf2_sha256 value is made to cost: DefaultIterations, lowered by
// tests that are not about timing.
var hardenIterations = DefaultIterations

// pbkdf2Hash is a decoded pbkdf2_sha256 or pbkdf2_sha1 value:
// <algorithm>$<iterations>$<salt>$<base64 key>.
type pbkdf2Hash struct {
	alg        string
	newHash    func() hash.Hash
	size       int
	iterations int
	salt       string
	encoded    string
}

func decodePBKDF2SHA256(encoded string) (stored, bool) {
	return decodePBKDF2(encoded, "pbkdf2_sha256", sha256.New, sha256.Size)
}

func decodePBKDF2SHA1(encoded string) (stored, bool) {
	return decodePBKDF2(encoded, "pbkdf2_sha1", sha1.New, sha1.Size)
}

// decodePBKDF2 splits encoded as Django's PBKDF2PasswordHasher.decode does
// (three "$" at most; the salt is not empty).
func decodePBKDF2(encoded, alg string, newHash func() hash.Hash, size int) (stored, bool) {
	parts := strings.SplitN(encoded, "$", 4)
	if len(parts) != 4 || parts[0] != alg || parts[2] == "" {
		return nil, false
	}
	n, ok := parseUint(parts[1], uint64(maxCost.pbkdf2Iterations))
	if !ok {
		return nil, false
	}
	return &pbkdf2Hash{alg: alg, newHash: newHash, size: size, iterations: int(n), salt: parts[2], encoded: encoded}, true
}

func (h *pbkdf2Hash) key(raw string, iterations int) []byte {
	dk, err := pbkdf2Key(h.newHash, raw, []byte(h.salt), iterations, h.size)
	if err != nil {
		return nil
	}
	return dk
}

// verify re-encodes raw with the stored salt and iterations and compares
// the whole string, as Django does.
func (h *pbkdf2Hash) verify(raw string) bool {
	dk := h.key(raw, h.iterations)
	if dk == nil {
		return false
	}
	again := h.alg + "$" + strconv.Itoa(h.iterations) + "$" + h.salt + "$" + base64.StdEncoding.EncodeToString(dk)
	return secretsEqual([]byte(again), []byte(h.encoded))
}

// mustUpdate: only pbkdf2_sha256 at DefaultIterations with a salt of at
// least 128 bits (22 characters of Django's alphabet) is current.
func (h *pbkdf2Hash) mustUpdate() bool {
	return h.alg != "pbkdf2_sha256" || h.iterations != DefaultIterations || utf8.RuneCountInString(h.salt) < 22
}

// hardenRuntime runs the iterations a default pbkdf2_sha256 check would
// have run beyond the stored count. Django does this only when the stored
// hasher is the preferred one.
func (h *pbkdf2Hash) hardenRuntime(raw string) {
	if h.alg != "pbkdf2_sha256" {
		return
	}
	if extra := hardenIterations - h.iterations; extra > 0 {
		h.key(raw, extra)
	}
}
