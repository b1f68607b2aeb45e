// Package knox is what django-rest-knox does with a token, as pure
// functions: how a key is made, the lookup prefix and the digest stored in
// knox_authtoken, the comparison of digests, and how auto-refresh moves an
// expiry (knox/crypto.py, knox/auth.py, knox/settings.py).
package knox

import (
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"time"
	"unicode/utf8"

	"github.com/tokenauth/caddy-tokenauth/internal/drf"
)

// TokenKeyLength is knox's CONSTANTS.TOKEN_KEY_LENGTH: the lookup prefix
// knox_authtoken.token_key holds the first 15 characters of a token.
const TokenKeyLength = 15

// MaxPrefix is knox's CONSTANTS.MAXIMUM_TOKEN_PREFIX_LENGTH.
const MaxPrefix = 10

// secretHex is the length of the random part of a key in hex characters
// (AUTH_TOKEN_CHARACTER_LENGTH).
const secretHex = 64

// DigestLength is the length of a digest: SHA-512 in hex.
const DigestLength = 2 * sha512.Size

// Generate makes a key as knox's create_token_string does: the prefix,
// then 64 lowercase hex characters from 32 bytes of crypto/rand.
func Generate(prefix string) string {
	var b [secretHex / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return prefix + hex.EncodeToString(b[:])
}

// TokenKey is token[:TOKEN_KEY_LENGTH] in Python: the first 15 characters
// (code points, not bytes) of the token. token must be valid UTF-8.
func TokenKey(token string) string {
	n := 0
	for i := range token {
		if n == TokenKeyLength {
			return token[:i]
		}
		n++
	}
	return token
}

// Digest is knox's hash_token: SHA-512 of the token's UTF-8 bytes, in
// lowercase hex.
func Digest(token string) string {
	sum := sha512.Sum512([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Match compares the digest of a token with a stored one in constant time,
// as knox's hmac.compare_digest does.
func Match(digest, stored string) bool {
	return subtle.ConstantTimeCompare([]byte(digest), []byte(stored)) == 1
}

// Plausible reports whether token has the shape of a knox key made with
// any TOKEN_PREFIX: at most MaxPrefix characters, then 64 lowercase hex
// characters. A token without it cannot match a digest knox made with the
// default AUTH_TOKEN_CHARACTER_LENGTH, so it is refused without a query.
func Plausible(token string) bool {
	n := len(token) - secretHex
	if n < 0 || n > 4*MaxPrefix || !drf.IsLowerHex(token[n:]) {
		return false
	}
	prefix := token[:n]
	return n <= MaxPrefix && isASCII(prefix) || utf8.ValidString(prefix) && utf8.RuneCountInString(prefix) <= MaxPrefix
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Refresh is knox's renew_token, in unix nanoseconds: the expiry a token
// used at now gets, now + ttl capped at created + maxTTL (no cap when
// maxTTL is 0), and whether knox writes it: only when it moves the current
// expiry by more than minInterval. It runs on every request of a token
// under auto-refresh, so it does integer arithmetic only.
func Refresh(now, created, current int64, ttl, maxTTL, minInterval time.Duration) (int64, bool) {
	next := now + int64(ttl)
	if maxTTL > 0 {
		if limit := created + int64(maxTTL); next > limit {
			next = limit
		}
	}
	return next, next-current > int64(minInterval)
}
