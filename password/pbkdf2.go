// Package password makes and checks passwords in the formats Django stores
// in auth_user.password.
package password

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
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
	dk, err := pbkdf2.Key(sha256.New, raw, []byte(salt), iterations, sha256.Size)
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
