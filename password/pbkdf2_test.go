package password

import (
	"strings"
	"testing"
)

// Vectors computed by Django itself (shared reference, password "password").
func TestEncodePBKDF2SHA256MatchesDjango(t *testing.T) {
	tests := []struct {
		iterations int
		want       string
	}{
		{600000, "pbkdf2_sha256$600000$abcdefghijklmnopqrstuv$r5ywZR7FQ1qbjU3er7HhCTPs1DQFG7VywroPduiUaMo="},
		{1000000, "pbkdf2_sha256$1000000$abcdefghijklmnopqrstuv$hiSPLmmsEJ4SXtBDfUpBLIVuYXFfcubYcZtjeWt1s3U="},
	}
	for _, tt := range tests {
		got, err := EncodePBKDF2SHA256("password", "abcdefghijklmnopqrstuv", tt.iterations)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("iterations %d: got %s, want %s", tt.iterations, got, tt.want)
		}
	}
}

func TestMakeUsesDefaultsAndFreshSalt(t *testing.T) {
	a, err := Make("secret", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Make("secret", 0)
	parts := strings.Split(a, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2_sha256" || parts[1] != "1000000" || len(parts[2]) != 22 {
		t.Fatalf("unexpected encoding %q", a)
	}
	for _, c := range parts[2] {
		if !strings.ContainsRune(saltChars, c) {
			t.Fatalf("salt %q has %q outside Django's alphabet", parts[2], c)
		}
	}
	if a == b {
		t.Fatal("two encodings share a salt")
	}
}
