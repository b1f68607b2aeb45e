package password

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// bcryptHash is a decoded bcrypt or bcrypt_sha256 value:
// <algorithm>$$2b$<cost>$<22-char salt><31-char hash>.
type bcryptHash struct {
	preHash bool   // bcrypt_sha256: bcrypt the hex SHA-256 of the password
	data    []byte // the bcrypt string after "<algorithm>$"
}

func decodeBcryptSHA256(encoded string) (stored, bool) {
	return decodeBcryptAlg(encoded, "bcrypt_sha256$", true)
}

func decodeBcrypt(encoded string) (stored, bool) {
	return decodeBcryptAlg(encoded, "bcrypt$", false)
}

// bcryptChars is bcrypt's base64 alphabet.
const bcryptChars = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// decodeBcryptAlg accepts what pyca/bcrypt's hashpw accepts as a salt and
// can return unchanged: the $2a$, $2b$ or $2y$ prefix, a two-digit cost
// from 4 to the limit, a canonical 22-character salt and a 31-character
// hash.
func decodeBcryptAlg(encoded, prefix string, preHash bool) (stored, bool) {
	data, ok := strings.CutPrefix(encoded, prefix)
	if !ok || len(data) != 60 || data[0] != '$' || data[1] != '2' || data[3] != '$' || data[6] != '$' {
		return nil, false
	}
	switch data[2] {
	case 'a', 'b', 'y':
	default:
		return nil, false
	}
	if data[4] < '0' || data[4] > '9' || data[5] < '0' || data[5] > '9' {
		return nil, false
	}
	cost := int(data[4]-'0')*10 + int(data[5]-'0')
	if cost < bcrypt.MinCost || cost > maxCost.bcryptCost {
		return nil, false
	}
	for i := 7; i < 60; i++ {
		if strings.IndexByte(bcryptChars, data[i]) < 0 {
			return nil, false
		}
	}
	// The 22nd salt character carries 2 unused bits, which bcrypt drops
	// and pyca/bcrypt writes back as zeros.
	if strings.IndexByte(bcryptChars, data[28])%16 != 0 {
		return nil, false
	}
	return &bcryptHash{preHash: preHash, data: []byte(data)}, true
}

// verify hashes the password as Django does (bcrypt_sha256: the 64 hex
// digits of its SHA-256; bcrypt: its first 72 bytes, where pyca/bcrypt
// truncates) and compares bcrypt's output with the stored one.
func (h *bcryptHash) verify(raw string) bool {
	var pw []byte
	if h.preHash {
		sum := sha256.Sum256([]byte(raw))
		pw = []byte(hex.EncodeToString(sum[:]))
	} else {
		if strings.IndexByte(raw, 0) >= 0 {
			return false // pyca/bcrypt refuses NUL bytes
		}
		pw = []byte(raw)
		if len(pw) > 72 {
			pw = pw[:72]
		}
	}
	return bcrypt.CompareHashAndPassword(h.data, pw) == nil
}

func (h *bcryptHash) mustUpdate() bool { return true }

// hardenRuntime does nothing: Django hardens only the preferred hasher.
func (h *bcryptHash) hardenRuntime(string) {}
