package password

import (
	"encoding/base64"
	"strconv"
	"strings"

	"golang.org/x/crypto/scrypt"
)

// scryptHash is a decoded scrypt value (Django 4.0+):
// scrypt$<N>$<salt>$<r>$<p>$<base64 of the 64-byte key>.
type scryptHash struct {
	n, r, p int
	salt    string
	encoded string
}

// decodeScrypt splits encoded into exactly six fields, as Django's
// ScryptPasswordHasher.decode does, and checks N (a power of two above 1),
// r and p against the limits.
func decodeScrypt(encoded string) (stored, bool) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "scrypt" || parts[2] == "" {
		return nil, false
	}
	n, ok1 := parseUint(parts[1], uint64(maxCost.scryptN))
	r, ok2 := parseUint(parts[3], uint64(maxCost.scryptWork))
	p, ok3 := parseUint(parts[4], uint64(maxCost.scryptWork))
	if !ok1 || !ok2 || !ok3 || n < 2 || n&(n-1) != 0 {
		return nil, false
	}
	// n ≤ 2^20 and r, p ≤ 2^24 here: no product below overflows.
	if r*p > uint64(maxCost.scryptWork)/n || 128*r*(n+p) > uint64(maxCost.scryptMemory) {
		return nil, false
	}
	return &scryptHash{n: int(n), r: int(r), p: int(p), salt: parts[2], encoded: encoded}, true
}

// verify re-encodes raw with the stored parameters and compares the whole
// string, as Django does.
func (h *scryptHash) verify(raw string) bool {
	dk, err := scrypt.Key([]byte(raw), []byte(h.salt), h.n, h.r, h.p, 64)
	if err != nil {
		return false
	}
	again := "scrypt$" + strconv.Itoa(h.n) + "$" + h.salt + "$" + strconv.Itoa(h.r) + "$" + strconv.Itoa(h.p) + "$" + base64.StdEncoding.EncodeToString(dk)
	return secretsEqual([]byte(again), []byte(h.encoded))
}

func (h *scryptHash) mustUpdate() bool { return true }

// hardenRuntime does nothing: Django hardens only the preferred hasher.
func (h *scryptHash) hardenRuntime(string) {}
