package password

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// djangoVectors is the output of testdata/django-hash-vectors.py.
type djangoVectors struct {
	Django  string `json:"django"`
	Vectors []struct {
		Algorithm  string `json:"algorithm"`
		Password   string `json:"password"`
		Encoded    string `json:"encoded"`
		MustUpdate bool   `json:"must_update"`
		Note       string `json:"note"`
		Probes     []struct {
			Password string `json:"password"`
			OK       bool   `json:"ok"`
		} `json:"probes"`
	} `json:"vectors"`
}

func loadVectors(t testing.TB, data []byte) djangoVectors {
	t.Helper()
	var v djangoVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decoding vectors: %v", err)
	}
	if len(v.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	return v
}

// expensive reports whether checking encoded costs about as much as a
// default hash (tens of milliseconds or more).
func expensive(encoded string) bool {
	for _, s := range []string{"$260000$", "$600000$", "$1000000$", "m=102400", "$2b$12$", "$16384$"} {
		if strings.Contains(encoded, s) {
			return true
		}
	}
	return false
}

// skipUnderRace skips a test of checks at a default cost under the race
// detector, which makes each one take seconds. The tests named Expensive…
// run in make test's pass without -race (-run 'Timing|TakeAsLong|Expensive');
// the cheap vectors cover the same code under the race detector.
func skipUnderRace(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("checks at a default cost, slow under the race detector")
	}
}

// Every vector in testdata/django_vectors.json was written by Django 3.2's
// own hashers (scrypt by Django 4.0+'s hasher code on hashlib), and every
// probe carries Django's verdict: Check must agree on all of them, and on
// mustUpdate as Django computes it with 5.2's preferred hasher. The
// vectors at a default cost are TestExpensiveDjangoVectors'.
func TestCheckAgreesWithDjangoVectors(t *testing.T) {
	counts := checkDjangoVectors(t, false)
	for _, alg := range []string{"pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "bcrypt", "scrypt", "md5", "sha1", "unsalted_md5", "unsalted_sha1"} {
		if counts[alg] == 0 {
			t.Errorf("no cheap %s vectors", alg)
		}
	}
}

// The Django vectors at a default cost (among them the only ones that need
// no update), without the race detector.
func TestExpensiveDjangoVectors(t *testing.T) {
	skipUnderRace(t)
	if counts := checkDjangoVectors(t, true); len(counts) == 0 {
		t.Fatal("no expensive vectors")
	}
}

// checkDjangoVectors checks the vectors of testdata/django_vectors.json
// that are expensive, or those that are not, in parallel, and counts them
// by algorithm.
func checkDjangoVectors(t *testing.T, wantExpensive bool) map[string]int {
	data, err := os.ReadFile(filepath.Join("testdata", "django_vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	vs := loadVectors(t, data)
	useCheapDummy(t) // restored after the parallel subtests
	counts := map[string]int{}
	for i, v := range vs.Vectors {
		if expensive(v.Encoded) != wantExpensive {
			continue
		}
		counts[v.Algorithm]++
		t.Run(v.Algorithm+"/"+itoa(i), func(t *testing.T) {
			t.Parallel()
			ok, mustUpdate := Check(v.Password, v.Encoded)
			if !ok {
				t.Fatalf("Check(%q, %q) = false, Django accepts it", v.Password, v.Encoded)
			}
			if mustUpdate != v.MustUpdate {
				t.Errorf("Check(%q, %q): mustUpdate = %v, Django says %v", v.Password, v.Encoded, mustUpdate, v.MustUpdate)
			}
			if h, _ := decode(v.Encoded); h == nil || (v.Algorithm != "unsalted_md5" && !strings.HasPrefix(v.Encoded, strings.TrimPrefix(v.Algorithm, "unsalted_"))) {
				t.Errorf("%q not identified as %s", v.Encoded, v.Algorithm)
			}
			probes := v.Probes
			if expensive(v.Encoded) {
				probes = probes[1:3] // only a different case and a trailing space
			}
			for _, p := range probes {
				if got, _ := Check(p.Password, v.Encoded); got != p.OK {
					t.Errorf("Check(%q, %q) = %v, Django says %v", p.Password, v.Encoded, got, p.OK)
				}
			}
		})
	}
	t.Logf("Django %s: %d of %d vectors %v", vs.Django, sumCounts(counts), len(vs.Vectors), counts)
	return counts
}

func sumCounts(counts map[string]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// The committed vectors are real Django output: the generator, run now
// with Django, makes fresh ones (random salts) that Check accepts.
func TestCheckAcceptsLiveDjangoVectors(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import django, bcrypt, argon2").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %s cannot import django, bcrypt and argon2: %v", python, err)
		}
		t.Skipf("no Django for %s: %v", python, err)
	}
	cmd := exec.Command(python, filepath.Join("testdata", "django-hash-vectors.py"), "--live")
	cmd.Stderr = os.Stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("generator: %v", err)
	}
	vs := loadVectors(t, out)
	useCheapDummy(t)
	t.Logf("Django %s made %d vectors in %v", vs.Django, len(vs.Vectors), time.Since(start).Round(time.Millisecond))
	for _, v := range vs.Vectors {
		if ok, mustUpdate := Check(v.Password, v.Encoded); !ok || mustUpdate != v.MustUpdate {
			t.Errorf("Check(%q, %q) = %v, %v; Django: true, %v", v.Password, v.Encoded, ok, mustUpdate, v.MustUpdate)
		}
		if ok, _ := Check(v.Password+"x", v.Encoded); ok {
			t.Errorf("Check accepts a wrong password for %q", v.Encoded)
		}
	}
}
