package storeerr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tokenauth/caddy-tokenauth/store"
)

func TestUnavailableWrapsTheSentinelAndTheCause(t *testing.T) {
	err := Unavailable("sqlite lookup", fmt.Errorf("reading: %w", context.DeadlineExceeded))
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap both ErrUnavailable and its cause", err)
	}
	if want := "token store unavailable: sqlite lookup: reading: context deadline exceeded"; err.Error() != want {
		t.Errorf("error text = %q, want %q", err, want)
	}
}

func TestUnavailableLeavesAnswersAndNilAlone(t *testing.T) {
	already := fmt.Errorf("%w: sqlite store: %w", store.ErrUnavailable, errors.New("no such file"))
	for _, err := range []error{
		nil,
		store.ErrNotFound,
		fmt.Errorf("user bob: %w", store.ErrNoUser),
		fmt.Errorf("user bob: %w", store.ErrUserExists),
		fmt.Errorf("user 7: %w", store.ErrTokenLimit),
		already,
	} {
		if got := Unavailable("op", err); got != err {
			t.Errorf("Unavailable(%v) = %v, want it unchanged", err, got)
		}
	}
}

func TestRowIsTheAnswerOrAFailure(t *testing.T) {
	noRows := errors.New("no rows in result set")
	answer := fmt.Errorf("user bob: %w", store.ErrNoUser)
	if err := Row(nil, noRows, answer, "op"); err != nil {
		t.Errorf("a row: %v, want nil", err)
	}
	if err := Row(fmt.Errorf("scan: %w", noRows), noRows, answer, "op"); err != answer {
		t.Errorf("no row: %v, want %v", err, answer)
	}
	cause := errors.New("connection reset")
	if err := Row(cause, noRows, answer, "op"); !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, cause) || errors.Is(err, store.ErrNoUser) {
		t.Errorf("a failure: %v, want ErrUnavailable wrapping its cause", err)
	}
}
