package knoxrow

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenauth/caddy-tokenauth/store"
)

func TestCheckRefusesRowsKnoxCouldNotWrite(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	good := store.KnoxNew{Digest: strings.Repeat("a", 128), TokenKey: "0123456789abcde", UserID: "7", Created: now, Expiry: now.Add(time.Hour)}
	if err := Check(good); err != nil {
		t.Fatalf("Check(a good row) = %v", err)
	}
	never := good
	never.Expiry = time.Time{}
	if err := Check(never); err != nil {
		t.Errorf("Check(a row without expiry) = %v", err)
	}
	wide := good
	wide.TokenKey = strings.Repeat("é", 25)
	if err := Check(wide); err != nil {
		t.Errorf("Check(25 characters of token_key, 50 bytes) = %v", err)
	}
	for name, mutate := range map[string]func(*store.KnoxNew){
		"empty digest":         func(r *store.KnoxNew) { r.Digest = "" },
		"digest of 129":        func(r *store.KnoxNew) { r.Digest += "a" },
		"empty token_key":      func(r *store.KnoxNew) { r.TokenKey = "" },
		"token_key of 26":      func(r *store.KnoxNew) { r.TokenKey = strings.Repeat("a", 26) },
		"token_key not UTF-8":  func(r *store.KnoxNew) { r.TokenKey = "\xff" },
		"no created":           func(r *store.KnoxNew) { r.Created = time.Time{} },
		"expiry before create": func(r *store.KnoxNew) { r.Expiry = r.Created.Add(-time.Second) },
		"user id not decimal":  func(r *store.KnoxNew) { r.UserID = "x" },
	} {
		r := good
		mutate(&r)
		if err := Check(r); err == nil {
			t.Errorf("%s: Check = nil, want an error", name)
		}
	}
}

func TestUserIDIsDecimalOnly(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "42": 42, "9223372036854775807": 1<<63 - 1} {
		if got, err := UserID(in); err != nil || got != want {
			t.Errorf("UserID(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "01", "+1", " 1", "1.0", "9223372036854775808"} {
		if _, err := UserID(in); !errors.Is(err, store.ErrNoUser) || !errors.Is(err, ErrUserID) {
			t.Errorf("UserID(%q) error = %v, want ErrNoUser", in, err)
		}
	}
}
