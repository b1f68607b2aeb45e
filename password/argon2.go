package password

import (
	"encoding/base64"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argon2Hash is a decoded argon2 value, "argon2" followed by argon2-cffi's
// encoding: argon2$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>
// with unpadded standard base64 (argon2i before Django 3.2).
type argon2Hash struct {
	id         bool // argon2id, else argon2i
	m, t, p    uint32
	salt, hash []byte
}

// decodeArgon2 accepts what libargon2's decoder accepts for version 19
// (canonical decimals, a salt of at least 8 bytes, a hash of at least 4,
// m ≥ 8·p), within the limits. argon2d and version 16 (no "v=") values are
// not supported: golang.org/x/crypto/argon2 implements neither.
func decodeArgon2(encoded string) (stored, bool) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "argon2" || parts[2] != "v=19" {
		return nil, false
	}
	h := &argon2Hash{}
	switch parts[1] {
	case "argon2id":
		h.id = true
	case "argon2i":
	default:
		return nil, false
	}
	ms, rest, ok1 := strings.Cut(parts[3], ",")
	ts, ps, ok2 := strings.Cut(rest, ",")
	ms, ok3 := strings.CutPrefix(ms, "m=")
	ts, ok4 := strings.CutPrefix(ts, "t=")
	ps, ok5 := strings.CutPrefix(ps, "p=")
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return nil, false
	}
	m, ok1 := parseUint(ms, uint64(maxCost.argon2Memory))
	t, ok2 := parseUint(ts, uint64(maxCost.argon2Time))
	p, ok3 := parseUint(ps, uint64(maxCost.argon2Threads))
	if !ok1 || !ok2 || !ok3 || p > 255 || m < 8*p || m*t > maxCost.argon2Work {
		return nil, false
	}
	h.m, h.t, h.p = uint32(m), uint32(t), uint32(p)
	var ok bool
	if h.salt, ok = decodeB64(parts[4]); !ok || len(h.salt) < 8 {
		return nil, false
	}
	if h.hash, ok = decodeB64(parts[5]); !ok || len(h.hash) < 4 || len(h.hash) > maxCost.argon2KeyLen {
		return nil, false
	}
	return h, true
}

// decodeB64 decodes unpadded standard base64 with zero trailing bits, as
// libargon2 requires.
func decodeB64(s string) ([]byte, bool) {
	if !isBase64Chars(s) {
		return nil, false
	}
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	return b, err == nil
}

// verify derives a key of the stored length from raw and the stored
// parameters and compares it with the stored hash.
func (h *argon2Hash) verify(raw string) bool {
	var k []byte
	if h.id {
		k = argon2.IDKey([]byte(raw), h.salt, h.t, h.m, uint8(h.p), uint32(len(h.hash)))
	} else {
		k = argon2.Key([]byte(raw), h.salt, h.t, h.m, uint8(h.p), uint32(len(h.hash)))
	}
	return secretsEqual(k, h.hash)
}

func (h *argon2Hash) mustUpdate() bool { return true }

// hardenRuntime does nothing: Django hardens only the preferred hasher.
func (h *argon2Hash) hardenRuntime(string) {}
