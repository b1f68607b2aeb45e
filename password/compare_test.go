package password

import (
	"hash"
	"reflect"
	"strings"
	"testing"
)

// watchSecretsEqual wraps secretsEqual until the test ends and returns the
// verdicts it gives, in order. Not for parallel tests.
func watchSecretsEqual(t *testing.T) *[]bool {
	t.Helper()
	saved := secretsEqual
	verdicts := new([]bool)
	secretsEqual = func(a, b []byte) bool {
		eq := saved(a, b)
		*verdicts = append(*verdicts, eq)
		return eq
	}
	t.Cleanup(func() { secretsEqual = saved })
	return verdicts
}

// secretsEqual is, outside tests, subtle.ConstantTimeCompare's verdict.
// (That it takes constant time is the standard library's promise; the
// hash dominates any timing a test could take.)
func TestSecretsEqualIsConstantTimeCompare(t *testing.T) {
	if reflect.ValueOf(secretsEqual).Pointer() != reflect.ValueOf(constantTimeEqual).Pointer() {
		t.Fatal("secretsEqual is not constantTimeEqual")
	}
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"abc", "ab", false},
		{"", "a", false},
	} {
		if got := secretsEqual([]byte(tt.a), []byte(tt.b)); got != tt.want {
			t.Errorf("secretsEqual(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

// Every hasher compares the secret it derived with the stored one through
// secretsEqual (in constant time), exactly once per check, and the verdict
// is Check's; bcrypt's comparison is golang.org/x/crypto/bcrypt's own
// (CompareHashAndPassword compares with subtle.ConstantTimeCompare), so it
// makes none. Each value here is Django's, for the password "password".
func TestEverySecretComparisonIsConstantTime(t *testing.T) {
	useCheapDummy(t)
	tests := []struct{ alg, encoded string }{
		{"pbkdf2_sha256", "pbkdf2_sha256$1000$abcdefghijklmnopqrstuv$3stk8nYcOvbsUUIWDNMdepEt7hXHqFbJCF4eT8gFor4="},
		{"pbkdf2_sha1", "pbkdf2_sha1$1000$abcdefghijklmnopqrstuv$Ir7AvXIdrwHyPccNzPC+G/N0xHs="},
		{"argon2", "argon2$argon2id$v=19$m=1024,t=3,p=1$MDEyMzQ1Njc4OWFiY2RlZg$WY57i40UT8awvhZz+V2qSA"},
		{"argon2", "argon2$argon2i$v=19$m=512,t=2,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$v8vPJSa07sIcJexLwdr9kA"},
		{"bcrypt_sha256", "bcrypt_sha256$$2b$05$cNuM.DFWg7zBRyIiBGX/xe5DB/GhfojbByQG8shagqtF.9rkAF6we"},
		{"bcrypt", "bcrypt$$2b$05$myKHs6NlKzLporvKbxXhheJODyHmMLLa/N9AVwVGgt5rwjPeZOXSm"},
		{"scrypt", "scrypt$16$abcdefghijklmnopqrstuv$1$1$IgpVvI91q9KKURewsTJy8gtBhG00PuqNM7cTLMZ3HefFVJ3oY3LP676MDvlSk1Vjy+1+aTXuEJBwdptfGsXcCw=="},
		{"md5", "md5$abcdefghijklmnopqrstuv$b4e651155b43534411f44f41daa7e314"},
		{"sha1", "sha1$abcdefghijklmnopqrstuv$cbaef418a175a9276e6346e84db0487d24216d4d"},
		{"unsalted_md5", "5f4dcc3b5aa765d61d8327deb882cf99"},
		{"unsalted_md5", "md5$$5f4dcc3b5aa765d61d8327deb882cf99"},
		{"unsalted_sha1", "sha1$$5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8"},
	}
	verdicts := watchSecretsEqual(t)
	covered := map[string]bool{}
	for _, tt := range tests {
		h, ok := decode(tt.encoded)
		if !ok {
			t.Fatalf("decode(%q) failed", tt.encoded)
		}
		if u, isUnsalted := h.(unsalted); isUnsalted && u.alg != tt.alg || !isUnsalted && !strings.HasPrefix(tt.encoded, tt.alg+"$") {
			t.Fatalf("%q is not %s", tt.encoded, tt.alg)
		}
		covered[tt.alg] = true
		for _, raw := range []string{"password", "Password"} {
			*verdicts = nil
			want := raw == "password"
			if ok, _ := Check(raw, tt.encoded); ok != want {
				t.Errorf("Check(%q, %q) = %v, want %v", raw, tt.encoded, ok, want)
			}
			if strings.HasPrefix(tt.alg, "bcrypt") {
				if len(*verdicts) != 0 {
					t.Errorf("Check(%q, %q): bcrypt compared through secretsEqual as well: %v", raw, tt.encoded, *verdicts)
				}
				continue
			}
			if len(*verdicts) != 1 || (*verdicts)[0] != want {
				t.Errorf("Check(%q, %q): secretsEqual gave %v, want once %v", raw, tt.encoded, *verdicts, want)
			}
		}
	}
	for alg := range decoders {
		if !covered[alg] {
			t.Errorf("no %s value", alg)
		}
	}
	for _, alg := range []string{"unsalted_md5", "unsalted_sha1"} {
		if !covered[alg] {
			t.Errorf("no %s value", alg)
		}
	}
}

// A wrong password against a pbkdf2_sha256 value with fewer iterations
// than hardenIterations derives keys for hardenIterations in all (Django's
// harden_runtime); a right one, or a stronger value, or pbkdf2_sha1 (not
// Django's preferred hasher), only the stored count. Counted, not timed, so
// that it holds under the race detector as well.
func TestCheckHardensPBKDF2SHA256Iterations(t *testing.T) {
	useCheapDummy(t)
	hardenIterations = 5000
	encode := func(iterations int) string {
		e, err := EncodePBKDF2SHA256("password", "abcdefghijklmnopqrstuv", iterations)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	tests := []struct {
		name, raw, encoded string
		want               int
	}{
		// Django's values, for the password "password".
		{"pbkdf2_sha256 1000, wrong", "Password", "pbkdf2_sha256$1000$abcdefghijklmnopqrstuv$3stk8nYcOvbsUUIWDNMdepEt7hXHqFbJCF4eT8gFor4=", 5000},
		{"pbkdf2_sha256 1000, right", "password", "pbkdf2_sha256$1000$abcdefghijklmnopqrstuv$3stk8nYcOvbsUUIWDNMdepEt7hXHqFbJCF4eT8gFor4=", 1000},
		{"pbkdf2_sha1 1000, wrong", "Password", "pbkdf2_sha1$1000$abcdefghijklmnopqrstuv$Ir7AvXIdrwHyPccNzPC+G/N0xHs=", 1000},
		{"pbkdf2_sha1 1000, right", "password", "pbkdf2_sha1$1000$abcdefghijklmnopqrstuv$Ir7AvXIdrwHyPccNzPC+G/N0xHs=", 1000},
		{"pbkdf2_sha256 4999, wrong", "Password", encode(4999), 5000},
		{"pbkdf2_sha256 5000, wrong", "Password", encode(5000), 5000},
		{"pbkdf2_sha256 6000, wrong", "Password", encode(6000), 6000},
	}
	saved := pbkdf2Key
	derived := 0
	pbkdf2Key = func(h func() hash.Hash, password string, salt []byte, iterations, keyLen int) ([]byte, error) {
		derived += iterations
		return saved(h, password, salt, iterations, keyLen)
	}
	t.Cleanup(func() { pbkdf2Key = saved })
	for _, tt := range tests {
		derived = 0
		ok, _ := Check(tt.raw, tt.encoded)
		if ok != (tt.raw == "password") {
			t.Errorf("%s: Check = %v", tt.name, ok)
		}
		if derived != tt.want {
			t.Errorf("%s: %d iterations derived, want %d", tt.name, derived, tt.want)
		}
	}
}
