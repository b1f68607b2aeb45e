package tokenauth

import (
	"net/http"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tokenauth/caddy-tokenauth/internal/drf"
)

// render answers a request the token check did not let through: DRF's
// refusal with the handler's status and challenge, 403 without a challenge
// to a user a requirement refuses, 429 past the failure budget, 503 when
// the store cannot answer. indent is the login endpoint's
// negotiated indent, -1 everywhere else.
func (h *TokenAuth) render(w http.ResponseWriter, a authResult, indent int) error {
	switch a.outcome {
	case authThrottled:
		detail, retry := drf.ThrottledDetail(a.wait)
		w.Header().Set("Retry-After", retry)
		drf.WriteJSON(w, http.StatusTooManyRequests, indent, drf.Member{Key: "detail", Value: detail})
	case authUnavailable:
		return h.unavailable(w, a.err)
	case authForbidden:
		a.err.(*drf.Error).Write(w, http.StatusForbidden, "", indent)
	default:
		a.err.(*drf.Error).Write(w, h.status, h.challenge, indent)
	}
	return nil
}

// unavailable answers 503 when the store cannot: the request is never let
// through unverified.
func (h *TokenAuth) unavailable(w http.ResponseWriter, err error) error {
	if c := h.logger.Check(zapcore.ErrorLevel, "token store unavailable"); c != nil {
		c.Write(zap.Error(err))
	}
	w.Header()["Retry-After"] = []string{drf.UnavailableRetryAfter}
	drf.ErrUnavailable.Write(w, http.StatusServiceUnavailable, "", -1)
	return nil
}
