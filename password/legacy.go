package password

import (
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"strings"
)

// saltedHash is a decoded md5 or sha1 value: <algorithm>$<salt>$<hex of
// digest(salt + password)>. Django removed sha1 in 5.1; md5 remains for
// tests.
type saltedHash struct {
	alg     string
	salt    string
	encoded string
}

func decodeMD5(encoded string) (stored, bool)  { return decodeSalted(encoded, "md5") }
func decodeSHA1(encoded string) (stored, bool) { return decodeSalted(encoded, "sha1") }

// decodeSalted splits encoded as Django's decode does (two "$" at most);
// Django's encode refuses an empty salt.
func decodeSalted(encoded, alg string) (stored, bool) {
	parts := strings.SplitN(encoded, "$", 3)
	if len(parts) != 3 || parts[0] != alg || parts[1] == "" {
		return nil, false
	}
	return &saltedHash{alg: alg, salt: parts[1], encoded: encoded}, true
}

func (h *saltedHash) verify(raw string) bool {
	again := h.alg + "$" + h.salt + "$" + hexDigest(h.alg, h.salt+raw)
	return secretsEqual([]byte(again), []byte(h.encoded))
}

func (h *saltedHash) mustUpdate() bool     { return true }
func (h *saltedHash) hardenRuntime(string) {}

// unsalted is an unsalted_md5 value (32 hex digits, "md5$$" stripped) or an
// unsalted_sha1 value (sha1$$<40 hex digits>), as ancient Django wrote
// them; Django removed both hashers in 5.1.
type unsalted struct {
	alg     string
	encoded string
}

func (h unsalted) verify(raw string) bool {
	again := hexDigest("md5", raw)
	if h.alg == "unsalted_sha1" {
		again = "sha1$$" + hexDigest("sha1", raw)
	}
	return secretsEqual([]byte(again), []byte(h.encoded))
}

func (h unsalted) mustUpdate() bool     { return true }
func (h unsalted) hardenRuntime(string) {}

func hexDigest(alg, s string) string {
	if alg == "md5" {
		sum := md5.Sum([]byte(s))
		return hex.EncodeToString(sum[:])
	}
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
