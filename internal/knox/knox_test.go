package knox

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// The tokens of the database real knox made (testdata/tokens.json, from
// the project's knox fixture): their token_key and digest are what knox
// stored.
func TestTokenKeyAndDigestAreKnoxs(t *testing.T) {
	raw, err := os.ReadFile("testdata/tokens.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Tokens []struct {
			Token    string `json:"token"`
			TokenKey string `json:"token_key"`
			Digest   string `json:"digest"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Tokens) == 0 {
		t.Fatal("no tokens in the fixture")
	}
	for _, tok := range f.Tokens {
		if got := TokenKey(tok.Token); got != tok.TokenKey {
			t.Errorf("TokenKey(%s…) = %q, knox stored %q", tok.TokenKey, got, tok.TokenKey)
		}
		if got := Digest(tok.Token); got != tok.Digest {
			t.Errorf("Digest(%s…) = %s, knox stored %s", tok.TokenKey, got, tok.Digest)
		}
		if !Match(Digest(tok.Token), tok.Digest) || Match(Digest(tok.Token+"0"), tok.Digest) {
			t.Errorf("Match of %s… is wrong", tok.TokenKey)
		}
		if !Plausible(tok.Token) {
			t.Errorf("a token knox made is not Plausible: %s…", tok.TokenKey)
		}
	}
}

func TestTokenKeyCountsCharactersNotBytes(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"abc":                    "abc",
		"0123456789abcdef":       "0123456789abcde",
		"ééééééééééééééééé":      "ééééééééééééééé",
		"myapp_0123456789abcdef": "myapp_012345678",
	} {
		if got := TokenKey(in); got != want {
			t.Errorf("TokenKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGenerateMakesPrefixAnd64Hex(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		k := Generate("myapp_")
		if !strings.HasPrefix(k, "myapp_") || len(k) != 6+64 || !Plausible(k) {
			t.Fatalf("Generate(myapp_) = %q", k)
		}
		if seen[k] {
			t.Fatalf("Generate repeated %q", k)
		}
		seen[k] = true
	}
	if k := Generate(""); len(k) != 64 || !Plausible(k) {
		t.Fatalf("Generate() = %q", k)
	}
}

func TestPlausible(t *testing.T) {
	hex64 := strings.Repeat("0a", 32)
	for tok, want := range map[string]bool{
		hex64:                   true,
		"0123456789" + hex64:    true,
		"01234567890" + hex64:   false, // prefix longer than 10
		hex64[1:]:               false,
		strings.ToUpper(hex64):  false,
		hex64[:63] + "g":        false,
		"é" + hex64:             true,
		"\xff" + hex64:          false,
		strings.Repeat("a", 40): false, // a DRF key
	} {
		if got := Plausible(tok); got != want {
			t.Errorf("Plausible(%q) = %v, want %v", tok, got, want)
		}
	}
}

func TestRefreshIsKnoxsRenewToken(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := created.Add(time.Hour)
	ttl, minI := 10*time.Hour, time.Minute
	cases := []struct {
		name    string
		current time.Time
		maxTTL  time.Duration
		want    time.Time
		write   bool
	}{
		{"moves by more than the interval", now.Add(ttl - 2*time.Minute), 0, now.Add(ttl), true},
		{"moves by exactly the interval: no write", now.Add(ttl - time.Minute), 0, now.Add(ttl), false},
		{"moves by less: no write", now.Add(ttl - time.Second), 0, now.Add(ttl), false},
		{"capped by max_ttl", now, 5 * time.Hour, created.Add(5 * time.Hour), true},
		{"cap in the past: no write", now, 30 * time.Minute, created.Add(30 * time.Minute), false},
	}
	for _, c := range cases {
		got, write := Refresh(now.UnixNano(), created.UnixNano(), c.current.UnixNano(), ttl, c.maxTTL, minI)
		if got != c.want.UnixNano() || write != c.write {
			t.Errorf("%s: Refresh = %v, %v; want %v, %v", c.name, got, write, c.want, c.write)
		}
	}
}
