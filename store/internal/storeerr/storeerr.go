// Package storeerr holds the error rule every store follows: a failure of
// the database is reported as store.ErrUnavailable wrapping its cause, so
// that callers find both with errors.Is, while an answer (no such token,
// no such user, the user exists) keeps its own sentinel.
package storeerr

import (
	"errors"
	"fmt"

	"github.com/tokenauth/caddy-tokenauth/store"
)

// Unavailable returns err, a failure of the database during op (such as
// "sqlite lookup"), as "token store unavailable: <op>: <err>", wrapping
// both store.ErrUnavailable and err. nil, an error that wraps
// store.ErrUnavailable already, and an answer (one wrapping
// store.ErrNotFound, store.ErrNoUser, store.ErrUserExists or
// store.ErrTokenLimit) are returned as they are.
func Unavailable(op string, err error) error {
	if err == nil || answer(err) || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", store.ErrUnavailable, op, err)
}

// answer tells an error that is the store's answer to the question asked.
func answer(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNoUser) ||
		errors.Is(err, store.ErrUserExists) || errors.Is(err, store.ErrTokenLimit)
}

// Row returns the error of a query for one row as the store's answer: nil
// for a row, answer when there is none (err wraps noRows, the driver's "no
// rows" error), and a failure of the database, with its cause, for
// anything else.
func Row(err, noRows, answer error, op string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, noRows):
		return answer
	}
	return Unavailable(op, err)
}
