package password

import (
	"strings"
)

// Check reports whether raw is the password stored in encoded, a value of
// Django's auth_user.password, with the semantics of Django's
// check_password (verify_password in 5.x).
//
// The hasher is identified from encoded as Django's identify_hasher does:
// 32 lowercase hex digits, or "md5$$" and 32, is unsalted_md5; "sha1$$"
// and 40 is unsalted_sha1; otherwise the algorithm is the text before the
// first "$". Supported: pbkdf2_sha256, pbkdf2_sha1, argon2 (argon2id and
// argon2i, version 19), bcrypt_sha256, bcrypt, scrypt, md5, sha1,
// unsalted_md5 and unsalted_sha1. Derived keys and re-encoded values are
// compared in constant time.
//
// An unusable ("!"-prefixed), empty, malformed or unsupported value (crypt,
// argon2d, argon2 version 16) never matches, nor does one whose cost
// exceeds a limit that keeps a hostile stored value to seconds and at most
// 1 GiB: pbkdf2 iterations ≤ 10,000,000; bcrypt cost ≤ 16; scrypt N ≤ 2^20,
// N·r·p ≤ 2^24, 128·r·(N+p) ≤ 256 MiB; argon2 m ≤ 1 GiB, t ≤ 100, p ≤ 255,
// m·t ≤ 4 GiB, hash ≤ 1024 bytes. In those cases, like Django since
// 4.2.14 (CVE-2024-39329), Check still spends one default-hasher run (on a
// random password) so that the answer takes as long as a real check. A wrong password against a pbkdf2_sha256 value with fewer
// than DefaultIterations spends the missing iterations, as Django's
// harden_runtime does.
//
// mustUpdate is true only when ok is true and the value is not what Django
// 5.2 would write now: another hasher than pbkdf2_sha256, an iteration
// count other than DefaultIterations, or a salt shorter than 22 characters.
// The caller should then store Make(raw, 0) in place of encoded.
func Check(raw, encoded string) (ok, mustUpdate bool) {
	h, valid := decode(encoded)
	if !valid {
		Dummy(randomString(40))
		return false, false
	}
	if !h.verify(raw) {
		h.hardenRuntime(raw)
		return false, false
	}
	return true, h.mustUpdate()
}

// Dummy spends the same work as Check of raw against a pbkdf2_sha256 value
// with DefaultIterations, and nothing else: Check spends it on a stored
// value it cannot use. For an unknown username, check the password with
// Check against DummyEncoded instead, which takes Check's own path.
func Dummy(raw string) {
	if h, ok := decode(dummyEncoded); ok {
		h.verify(raw)
	}
}

// DummyEncoded returns a stored value of Django's default hasher and cost
// (pbkdf2_sha256 with DefaultIterations) that no password matches. A login
// for an unknown username checks the password against it with Check, so
// that it takes the same code path, and the same time, as a wrong password
// for a user whose password has the default cost.
func DummyEncoded() string { return dummyEncoded }

// dummyEncoded has the shape of a default pbkdf2_sha256 value: the default
// iteration count, a 22-character salt and a random 32-byte "key" that no
// known password derives. Tests may swap it for a cheaper one.
var dummyEncoded = "pbkdf2_sha256$" + itoa(DefaultIterations) + "$" + Salt() + "$" + randomKeyB64(32)

// stored is one decoded stored password.
type stored interface {
	// verify reports whether raw is the password, in constant time with
	// respect to the stored secret: it compares through secretsEqual.
	verify(raw string) bool
	// mustUpdate reports whether Django 5.2 would re-encode the value after
	// a successful check.
	mustUpdate() bool
	// hardenRuntime spends the work a check at the default cost would have
	// cost beyond this one (Django's harden_runtime), after a wrong password.
	hardenRuntime(raw string)
}

// decoders maps Django's algorithm names to their parsers. A parser returns
// false for a value Django's hasher would not accept or that exceeds the
// limits.
var decoders = map[string]func(encoded string) (stored, bool){
	"pbkdf2_sha256": decodePBKDF2SHA256,
	"pbkdf2_sha1":   decodePBKDF2SHA1,
	"argon2":        decodeArgon2,
	"bcrypt_sha256": decodeBcryptSHA256,
	"bcrypt":        decodeBcrypt,
	"scrypt":        decodeScrypt,
	"md5":           decodeMD5,
	"sha1":          decodeSHA1,
}

// decode identifies the hasher of encoded as Django's identify_hasher does
// and parses the value.
func decode(encoded string) (stored, bool) {
	switch {
	case len(encoded) == 32 && isLowerHex(encoded):
		return unsalted{alg: "unsalted_md5", encoded: encoded}, true
	case len(encoded) == 37 && strings.HasPrefix(encoded, "md5$$") && isLowerHex(encoded[5:]):
		return unsalted{alg: "unsalted_md5", encoded: encoded[5:]}, true
	case len(encoded) == 46 && strings.HasPrefix(encoded, "sha1$$") && isLowerHex(encoded[6:]):
		return unsalted{alg: "unsalted_sha1", encoded: encoded}, true
	}
	alg, _, found := strings.Cut(encoded, "$")
	if !found {
		return nil, false
	}
	parse, ok := decoders[alg]
	if !ok {
		return nil, false
	}
	return parse(encoded)
}
