// Package knoxrow holds what both stores check of a knox_authtoken row
// before any SQL runs, so that SQLite (which enforces no varchar length)
// and PostgreSQL refuse the same rows with the same errors.
package knoxrow

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// The widths of knox_authtoken's columns (knox/models.py): digest is
// CONSTANTS.DIGEST_LENGTH, token_key MAXIMUM_TOKEN_PREFIX_LENGTH +
// TOKEN_KEY_LENGTH. Django counts characters, as PostgreSQL's varchar does.
const (
	DigestWidth   = 128
	TokenKeyWidth = 25
)

// Check refuses a row knox could not have written: an empty or too wide
// digest or token_key, no created, a user id that is not a decimal, an
// expiry before created.
func Check(t store.KnoxNew) error {
	fail := func(why string) error { return fmt.Errorf("knox token %.15q: %s", t.TokenKey, why) }
	switch {
	case t.Digest == "" || utf8.RuneCountInString(t.Digest) > DigestWidth:
		return fail(fmt.Sprintf("digest must be 1 to %d characters", DigestWidth))
	case t.TokenKey == "" || utf8.RuneCountInString(t.TokenKey) > TokenKeyWidth:
		return fail(fmt.Sprintf("token_key must be 1 to %d characters", TokenKeyWidth))
	case !utf8.ValidString(t.Digest) || !utf8.ValidString(t.TokenKey):
		return fail("digest and token_key must be UTF-8")
	case t.Created.IsZero():
		return fail("no created time")
	case !t.Expiry.IsZero() && t.Expiry.Before(t.Created):
		return fail("expiry before created")
	}
	if _, err := UserID(t.UserID); err != nil {
		return err
	}
	return nil
}

// ErrUserID is the error of a user id that is not auth_user.id in decimal.
var ErrUserID = errors.New("not a user id")

// UserID parses auth_user.id in decimal. Anything else names no user: the
// error wraps store.ErrNoUser.
func UserID(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != id {
		return 0, fmt.Errorf("user id %q: %w: %w", id, ErrUserID, store.ErrNoUser)
	}
	return n, nil
}
