package password

import (
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// useCheapDummy makes the default-hasher work that Check spends on a value
// it rejects, or on a wrong password against a weaker pbkdf2_sha256 value,
// nearly free, for tests that are not about timing. Not for parallel tests.
func useCheapDummy(t testing.TB) {
	t.Helper()
	savedDummy, savedHarden := dummyEncoded, hardenIterations
	dummyEncoded = "pbkdf2_sha256$1$" + Salt() + "$" + randomKeyB64(32)
	hardenIterations = 1
	t.Cleanup(func() { dummyEncoded, hardenIterations = savedDummy, savedHarden })
}

// Published vectors computed by Django 4.2 and 5.2 (shared reference §3.2),
// password "password".
var publishedVectors = []struct {
	name       string
	encoded    string
	mustUpdate bool
}{
	{"pbkdf2_sha256 4.2", "pbkdf2_sha256$600000$abcdefghijklmnopqrstuv$r5ywZR7FQ1qbjU3er7HhCTPs1DQFG7VywroPduiUaMo=", true},
	{"pbkdf2_sha256 5.2", "pbkdf2_sha256$1000000$abcdefghijklmnopqrstuv$hiSPLmmsEJ4SXtBDfUpBLIVuYXFfcubYcZtjeWt1s3U=", false},
	{"pbkdf2_sha1 4.2", "pbkdf2_sha1$600000$abcdefghijklmnopqrstuv$8uo+l3lwPYa3KsbMVVGcKkKHAuo=", true},
	{"pbkdf2_sha1 5.2", "pbkdf2_sha1$1000000$abcdefghijklmnopqrstuv$c7c7NdKDUYGR/itWv/yBjYXzXbU=", true},
	{"argon2id", "argon2$argon2id$v=19$m=102400,t=2,p=8$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$vig2txb5cKbyUuIOSPXung", true},
	{"bcrypt_sha256", "bcrypt_sha256$$2b$12$abcdefghijklmnopqrstuugkQA0GCBGUEqAtJsvVqqVkMMm/ez2qi", true},
	{"bcrypt", "bcrypt$$2b$12$abcdefghijklmnopqrstuutwZ1IOTtu3SsEBT5lI/LFncP31tIybm", true},
	{"scrypt p=1 4.2", "scrypt$16384$abcdefghijklmnopqrstuv$8$1$FiY8XCVPLRSpSapMuI9WuNt8wVDsppFal3qwH2Hy/9S9qm0DMPnjW6klIOgpy8PHd+69JzcvB7dcdwHG8HeExA==", true},
	{"scrypt p=5 5.2", "scrypt$16384$abcdefghijklmnopqrstuv$8$5$nEm7Pi7EHJjCWhbAUOPwKB9ZkBdqed/x08Sl27mc9dSFwnLRD4E8HcfCrBo/7ZEPTRlkZEGw3FuBXHxXLkBAIA==", true},
	{"md5", "md5$abcdefghijklmnopqrstuv$b4e651155b43534411f44f41daa7e314", true},
	{"sha1", "sha1$abcdefghijklmnopqrstuv$cbaef418a175a9276e6346e84db0487d24216d4d", true},
	{"unsalted_sha1", "sha1$$5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8", true},
	{"unsalted_md5", "5f4dcc3b5aa765d61d8327deb882cf99", true},
	{"unsalted_md5 md5$$", "md5$$5f4dcc3b5aa765d61d8327deb882cf99", true},
}

// Check accepts "password" for each published vector, with Django's
// mustUpdate, and refuses "Password". The vectors at a default cost are
// TestExpensivePublishedVectors'.
func TestCheckAcceptsPublishedDjangoVectors(t *testing.T) {
	checkPublishedVectors(t, false)
}

// The published vectors at a default cost (Django 4.2's and 5.2's
// pbkdf2, argon2, bcrypt and scrypt), without the race detector.
func TestExpensivePublishedVectors(t *testing.T) {
	skipUnderRace(t)
	checkPublishedVectors(t, true)
}

// checkPublishedVectors checks the published vectors that are expensive,
// or those that are not, in parallel.
func checkPublishedVectors(t *testing.T, wantExpensive bool) {
	n := 0
	for _, tt := range publishedVectors {
		if expensive(tt.encoded) != wantExpensive {
			continue
		}
		n++
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok, mustUpdate := Check("password", tt.encoded)
			if !ok || mustUpdate != tt.mustUpdate {
				t.Errorf("Check(password) = %v, %v; want true, %v", ok, mustUpdate, tt.mustUpdate)
			}
			if ok, mustUpdate := Check("Password", tt.encoded); ok || mustUpdate {
				t.Errorf("Check(Password) = %v, %v; want false, false", ok, mustUpdate)
			}
		})
	}
	if n == 0 {
		t.Fatal("no vectors")
	}
}

// Values Django cannot check (unusable, empty, gibberish, unknown or
// unsupported algorithms, malformed fields) never match.
func TestCheckRejectsUnusableMalformedAndUnknown(t *testing.T) {
	useCheapDummy(t)
	tests := []struct{ name, encoded string }{
		{"empty", ""},
		{"unusable", "!" + strings.Repeat("x", 40)},
		{"unusable prefix on a real hash", "!pbkdf2_sha256$1$abcdefghijklmnopqrstuv$Pk5yBBUk5bK2TmFBcQ9zKRVsNCHjTV2S4eBs5kZoDzQ="},
		{"no dollar", "password"},
		{"unknown algorithm", "rot13$salt$cnffjbeq"},
		{"crypt (removed in Django 5.0)", "crypt$$ab1Hv2Lg7ltQo"},
		{"algorithm case", "PBKDF2_SHA256$1000$abcdefghijklmnopqrstuv$x"},
		{"pbkdf2 missing field", "pbkdf2_sha256$1000$abcdefghijklmnopqrstuv"},
		{"pbkdf2 empty salt", "pbkdf2_sha256$1000$$x"},
		{"pbkdf2 zero iterations", "pbkdf2_sha256$0$abcdefghijklmnopqrstuv$x"},
		{"pbkdf2 negative iterations", "pbkdf2_sha256$-1$abcdefghijklmnopqrstuv$x"},
		{"pbkdf2 leading zero", "pbkdf2_sha256$01000$abcdefghijklmnopqrstuv$x"},
		{"pbkdf2 plus sign", "pbkdf2_sha256$+1000$abcdefghijklmnopqrstuv$x"},
		{"pbkdf2 underscore", "pbkdf2_sha256$1_000$abcdefghijklmnopqrstuv$x"},
		{"pbkdf2 over the limit", "pbkdf2_sha256$10000001$abcdefghijklmnopqrstuv$x"},
		{"pbkdf2 huge", "pbkdf2_sha256$99999999999999999999999$abcdefghijklmnopqrstuv$x"},
		{"argon2 v=16", "argon2$argon2i$m=512,t=2,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$AAAAAAAAAAAAAAAAAAAAAA"},
		{"argon2d", "argon2$argon2d$v=19$m=512,t=2,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$AAAAAAAAAAAAAAAAAAAAAA"},
		{"argon2 params order", "argon2$argon2id$v=19$t=2,m=512,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$AAAAAAAAAAAAAAAAAAAAAA"},
		{"argon2 leading zero", "argon2$argon2id$v=19$m=0512,t=2,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$AAAAAAAAAAAAAAAAAAAAAA"},
		{"argon2 padded salt", "argon2$argon2id$v=19$m=512,t=2,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg==$AAAAAAAAAAAAAAAAAAAAAA"},
		{"argon2 newline in salt", "argon2$argon2id$v=19$m=512,t=2,p=2$YWJjZGVm\nZ2hpamtsbW5vcHFyc3R1dg$AAAAAAAAAAAAAAAAAAAAAA"},
		{"argon2 short salt", "argon2$argon2id$v=19$m=512,t=2,p=2$YWJjZGVm$AAAAAAAAAAAAAAAAAAAAAA"},
		{"argon2 short hash", "argon2$argon2id$v=19$m=512,t=2,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$AAA"},
		{"argon2 m below 8p", "argon2$argon2id$v=19$m=8,t=2,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$AAAAAAAAAAAAAAAAAAAAAA"},
		{"argon2 t=0", "argon2$argon2id$v=19$m=512,t=0,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$AAAAAAAAAAAAAAAAAAAAAA"},
		{"argon2 p=0", "argon2$argon2id$v=19$m=512,t=2,p=0$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$AAAAAAAAAAAAAAAAAAAAAA"},
		{"argon2 m over 1 GiB", "argon2$argon2id$v=19$m=1048577,t=1,p=1$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$AAAAAAAAAAAAAAAAAAAAAA"},
		{"argon2 t over 100", "argon2$argon2id$v=19$m=8,t=101,p=1$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$AAAAAAAAAAAAAAAAAAAAAA"},
		{"argon2 p over 255", "argon2$argon2id$v=19$m=4096,t=1,p=256$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$AAAAAAAAAAAAAAAAAAAAAA"},
		{"argon2 1 GiB × 100 passes", "argon2$argon2id$v=19$m=1048576,t=100,p=1$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$AAAAAAAAAAAAAAAAAAAAAA"},
		{"argon2 hash over 1024 bytes", "argon2$argon2id$v=19$m=512,t=2,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$" + strings.Repeat("A", 1368)},
		{"bcrypt cost 31", "bcrypt$$2b$31$abcdefghijklmnopqrstuutwZ1IOTtu3SsEBT5lI/LFncP31tIybm"},
		{"bcrypt cost 17", "bcrypt$$2b$17$abcdefghijklmnopqrstuutwZ1IOTtu3SsEBT5lI/LFncP31tIybm"},
		{"bcrypt cost 3", "bcrypt$$2b$03$abcdefghijklmnopqrstuutwZ1IOTtu3SsEBT5lI/LFncP31tIybm"},
		{"bcrypt $2x$", "bcrypt$$2x$12$abcdefghijklmnopqrstuutwZ1IOTtu3SsEBT5lI/LFncP31tIybm"},
		{"bcrypt $2$", "bcrypt$$2$12$abcdefghijklmnopqrstuutwZ1IOTtu3SsEBT5lI/LFncP31tIybm"},
		{"bcrypt non-canonical salt", "bcrypt$$2b$12$abcdefghijklmnopqrstuvtwZ1IOTtu3SsEBT5lI/LFncP31tIybm"},
		{"bcrypt trailing data", "bcrypt$$2b$12$abcdefghijklmnopqrstuutwZ1IOTtu3SsEBT5lI/LFncP31tIybmX"},
		{"bcrypt truncated", "bcrypt$$2b$12$abcdefghijklmnopqrstuutwZ1IOTtu3SsEBT5lI/LFncP31tIyb"},
		{"bcrypt without algorithm $", "bcrypt$2b$12$abcdefghijklmnopqrstuutwZ1IOTtu3SsEBT5lI/LFncP31tIybm"},
		{"scrypt N not a power of two", "scrypt$16383$abcdefghijklmnopqrstuv$8$1$x"},
		{"scrypt N=1", "scrypt$1$abcdefghijklmnopqrstuv$8$1$x"},
		{"scrypt N over 2^20", "scrypt$2097152$abcdefghijklmnopqrstuv$1$1$x"},
		{"scrypt over 256 MiB", "scrypt$1048576$abcdefghijklmnopqrstuv$8$1$x"},
		{"scrypt r·p huge", "scrypt$2$abcdefghijklmnopqrstuv$1073741823$1073741823$x"},
		{"scrypt work", "scrypt$1024$abcdefghijklmnopqrstuv$1$16385$x"},
		{"scrypt extra field", "scrypt$16384$abcdefghijklmnopqrstuv$8$1$x$y"},
		{"md5 empty salt", "md5$$" + strings.Repeat("0", 31)},
		{"sha1 empty salt", "sha1$$" + strings.Repeat("0", 39)},
		{"unsalted_md5 upper case", "5F4DCC3B5AA765D61D8327DEB882CF99"},
		{"unsalted_md5 one short", "5f4dcc3b5aa765d61d8327deb882cf9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if h, ok := decode(tt.encoded); ok {
				t.Errorf("decode(%q) accepted it as %T", tt.encoded, h)
			}
			start := time.Now()
			if ok, mustUpdate := Check("password", tt.encoded); ok || mustUpdate {
				t.Errorf("Check = %v, %v; want false, false", ok, mustUpdate)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("rejecting took %v", d)
			}
		})
	}
}

// The password must match exactly: no case folding, no trimming, no
// Unicode normalisation, and bcrypt_sha256 does not truncate.
func TestCheckRejectsNearMisses(t *testing.T) {
	useCheapDummy(t)
	encode := func(raw string) string {
		e, err := EncodePBKDF2SHA256(raw, "abcdefghijklmnopqrstuv", 1)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	tests := []struct{ name, raw, encoded string }{
		{"case", "Password", encode("password")},
		{"trailing space", "password ", encode("password")},
		{"leading space", " password", encode("password")},
		{"NFC vs NFD", "pa\u0308sswo\u0308rd", encode("pässwörd")},
		{"empty vs non-empty", "", encode("x")},
		{"prefix", "passwor", encode("password")},
		{"md5 case", "Password", "md5$abcdefghijklmnopqrstuv$b4e651155b43534411f44f41daa7e314"},
		{"unsalted md5 trailing space", "password ", "5f4dcc3b5aa765d61d8327deb882cf99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ok, _ := Check(tt.raw, tt.encoded); ok {
				t.Errorf("Check(%q, %q) = true", tt.raw, tt.encoded)
			}
		})
	}
}

// mustUpdate follows Django 5.2: only pbkdf2_sha256 at DefaultIterations
// with a salt of 22 or more characters is current. (End to end: the
// published 4.2 and 5.2 vectors, and Django's own verdicts in the vectors
// file.)
func TestMustUpdateFollowsDjango52(t *testing.T) {
	key := "$" + randomKeyB64(32)
	def := itoa(DefaultIterations)
	tests := []struct {
		name       string
		encoded    string
		mustUpdate bool
	}{
		{"22-char salt, default iterations", "pbkdf2_sha256$" + def + "$abcdefghijklmnopqrstuv" + key, false},
		{"longer salt", "pbkdf2_sha256$" + def + "$abcdefghijklmnopqrstuvwxyz" + key, false},
		{"22 non-ASCII characters", "pbkdf2_sha256$" + def + "$" + strings.Repeat("ä", 22) + key, false},
		{"21-char salt", "pbkdf2_sha256$" + def + "$abcdefghijklmnopqrstu" + key, true},
		{"12-char salt (Django < 3.2)", "pbkdf2_sha256$" + def + "$aB3dE5gH7jK9" + key, true},
		{"fewer iterations (Django 4.2)", "pbkdf2_sha256$600000$abcdefghijklmnopqrstuv" + key, true},
		{"more iterations (Django 6.0)", "pbkdf2_sha256$1200000$abcdefghijklmnopqrstuv" + key, true},
		{"pbkdf2_sha1 at the default", "pbkdf2_sha1$" + def + "$abcdefghijklmnopqrstuv$" + randomKeyB64(20), true},
		{"md5", "md5$abcdefghijklmnopqrstuv$b4e651155b43534411f44f41daa7e314", true},
		{"unsalted_md5", "5f4dcc3b5aa765d61d8327deb882cf99", true},
		{"bcrypt", "bcrypt$$2b$12$abcdefghijklmnopqrstuutwZ1IOTtu3SsEBT5lI/LFncP31tIybm", true},
		{"argon2", "argon2$argon2id$v=19$m=102400,t=2,p=8$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$vig2txb5cKbyUuIOSPXung", true},
		{"scrypt", "scrypt$16384$abcdefghijklmnopqrstuv$8$5$x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ok := decode(tt.encoded)
			if !ok {
				t.Fatalf("decode(%q) failed", tt.encoded)
			}
			if got := h.mustUpdate(); got != tt.mustUpdate {
				t.Errorf("mustUpdate = %v, want %v", got, tt.mustUpdate)
			}
		})
	}
}

// A wrong password never asks for an update.
func TestCheckWrongPasswordNeverMustUpdate(t *testing.T) {
	useCheapDummy(t)
	for _, encoded := range []string{
		"pbkdf2_sha256$1$abcdefghijkl$" + randomKeyB64(32),
		"md5$abcdefghijklmnopqrstuv$b4e651155b43534411f44f41daa7e314",
		"5f4dcc3b5aa765d61d8327deb882cf99",
	} {
		if ok, mustUpdate := Check("wrong", encoded); ok || mustUpdate {
			t.Errorf("Check(wrong, %q) = %v, %v; want false, false", encoded, ok, mustUpdate)
		}
	}
}

// The values at each limit are accepted (and not run: they are slow);
// one step beyond is rejected.
func TestLimitsAcceptTheirBoundary(t *testing.T) {
	salt := "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg"
	tests := []struct {
		name   string
		at     string
		beyond string
	}{
		{"pbkdf2 iterations", "pbkdf2_sha256$10000000$s$x", "pbkdf2_sha256$10000001$s$x"},
		{"bcrypt cost", "bcrypt$$2b$16$abcdefghijklmnopqrstuutwZ1IOTtu3SsEBT5lI/LFncP31tIybm", "bcrypt$$2b$17$abcdefghijklmnopqrstuutwZ1IOTtu3SsEBT5lI/LFncP31tIybm"},
		{"scrypt memory", "scrypt$2$s$1$2097150$x", "scrypt$2$s$1$2097151$x"},
		{"scrypt work", "scrypt$16384$s$8$128$x", "scrypt$16384$s$8$129$x"},
		{"argon2 memory", "argon2$argon2id$v=19$m=1048576,t=4,p=255$" + salt + "$AAAAAA", "argon2$argon2id$v=19$m=1048577,t=1,p=1$" + salt + "$AAAAAA"},
		{"argon2 time", "argon2$argon2i$v=19$m=8,t=100,p=1$" + salt + "$AAAAAA", "argon2$argon2i$v=19$m=8,t=101,p=1$" + salt + "$AAAAAA"},
		{"argon2 work", "argon2$argon2i$v=19$m=41943,t=100,p=1$" + salt + "$AAAAAA", "argon2$argon2i$v=19$m=41944,t=100,p=1$" + salt + "$AAAAAA"},
		{"argon2 hash length", "argon2$argon2i$v=19$m=8,t=1,p=1$" + salt + "$" + strings.Repeat("A", 1365) + "Q", "argon2$argon2i$v=19$m=8,t=1,p=1$" + salt + "$" + strings.Repeat("A", 1367)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := decode(tt.at); !ok {
				t.Errorf("decode(%.60q…) rejected the value at the limit", tt.at)
			}
			if _, ok := decode(tt.beyond); ok {
				t.Errorf("decode(%.60q…) accepted a value beyond the limit", tt.beyond)
			}
		})
	}
}

// Django's harden_runtime: a check against a value of fewer iterations
// than the default runs the difference too, when the password is wrong,
// so that an old hash does not answer faster; a right password is not
// slowed. Compared in CPU time of the test's thread (medians of
// interleaved runs), which other processes do not disturb; make test runs
// it in its pass without -race.
func TestCheckHardensRuntimeTiming(t *testing.T) {
	if raceEnabled {
		t.Skip("timing under -race is not the code's: see make test's pass without -race")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cheap, _ := EncodePBKDF2SHA256("secret", "abcdefghijklmnopqrstuv", 1000)
	current, _ := EncodePBKDF2SHA256("secret", "abcdefghijklmnopqrstuv", DefaultIterations)
	const runs = 5
	var right, wrong, full []time.Duration
	for range runs {
		for _, m := range []struct {
			d       *[]time.Duration
			raw, in string
		}{{&right, "secret", cheap}, {&wrong, "wrong", cheap}, {&full, "wrong", current}} {
			start := threadCPUTime()
			Check(m.raw, m.in)
			*m.d = append(*m.d, threadCPUTime()-start)
		}
	}
	median := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	r, w, f := median(right), median(wrong), median(full)
	t.Logf("1000 iterations: right %v, wrong %v; default, wrong %v (CPU, medians of %d)", r, w, f, runs)
	if w < f/2 || r > f/4 {
		t.Errorf("1000 iterations: right %v, wrong %v; default wrong %v", r, w, f)
	}
}
