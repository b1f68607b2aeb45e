package tokenauth

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/tokenauth/caddy-tokenauth/internal/drf"
	"github.com/tokenauth/caddy-tokenauth/internal/knox"
	"github.com/tokenauth/caddy-tokenauth/store"
)

// serveKnoxLogin answers the login endpoint under tokens knox with the
// one of knox's two ways to log in that the request takes:
//
//   - with "Authorization: Basic …", knox's LoginView behind DRF's
//     BasicAuthentication (a body is ignored);
//   - otherwise, with a body, knox's documented username and password
//     recipe: LoginView with AllowAny, DRF's AuthTokenSerializer and
//     Django's login() (knox's TokenAuthentication runs first, so a bad
//     Token header is refused; another user's valid token is ignored);
//   - otherwise the Basic view's 401.
//
// The negotiation has run (serveLogin).
func (h *TokenAuth) serveKnoxLogin(w http.ResponseWriter, r *http.Request, indent int) error {
	userid, pw, basic := drf.ParseBasic(r.Header["Authorization"])
	switch {
	case basic != drf.BasicNone:
		return h.serveBasicLogin(w, r, indent, userid, pw, basic)
	case r.ContentLength != 0:
		return h.serveRecipeLogin(w, r, indent)
	}
	anonymous(r)
	drf.ErrNotProvided.Write(w, http.StatusUnauthorized, drf.BasicChallenge, indent)
	return nil
}

// serveBasicLogin is knox's LoginView with BasicAuthentication: the
// credentials checked (401 with the Basic challenge), then the throttle,
// the method, the limit and the token.
func (h *TokenAuth) serveBasicLogin(w http.ResponseWriter, r *http.Request, indent int, userid, pw string, res drf.BasicResult) error {
	anonymous(r)
	if e := res.Err(); e != nil {
		loginInvalid.Inc()
		e.Write(w, http.StatusUnauthorized, drf.BasicChallenge, indent)
		return nil
	}
	user, ok, err := h.checkPassword(r.Context(), userid, pw)
	if err != nil {
		h.passwordCheckFailed(w, r, indent, err)
		return nil
	}
	if !ok {
		loginBadCredentials.Inc()
		drf.ErrBadBasicLogin.Write(w, http.StatusUnauthorized, drf.BasicChallenge, indent)
		return nil
	}
	if h.loginThrottled(w, r, indent) || !h.loginMethod(w, r, indent, drf.WriteKnoxLoginOptions) {
		return nil
	}
	return h.issueKnox(w, r, indent, user, false)
}

// serveRecipeLogin is knox's username and password recipe.
func (h *TokenAuth) serveRecipeLogin(w http.ResponseWriter, r *http.Request, indent int) error {
	a := h.authenticate(r)
	countRequest(&a, true)
	switch a.outcome {
	case authOK, authAnonymous:
		anonymous(r) // the token, if any, is not whom the token goes to
	default:
		return h.render(w, a, indent)
	}
	if h.loginThrottled(w, r, indent) || !h.loginMethod(w, r, indent, drf.WriteKnoxLoginOptions) {
		return nil
	}
	user, answered := h.bodyCredentials(w, r, indent)
	if answered {
		return nil
	}
	return h.issueKnox(w, r, indent, user, true)
}

// issueKnox is knox's LoginView.post for user: the per-user limit (403),
// a new token, the user_logged_in signal's last_login, and the answer
// {"expiry": …, "token": …}. The recipe calls Django's login() first, so
// its last_login is written even when the limit refuses.
func (h *TokenAuth) issueKnox(w http.ResponseWriter, r *http.Request, indent int, user store.User, loginFirst bool) error {
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if loginFirst {
		if err := h.knox.SetLastLogin(ctx, user.ID, now); err != nil {
			loginUnavailable.Inc()
			return h.unavailable(w, err)
		}
	}
	t := h.Tokens
	token := knox.Generate(t.Prefix)
	row := store.KnoxNew{Digest: knox.Digest(token), TokenKey: knox.TokenKey(token), UserID: user.ID, Created: now}
	expiry := any(nil) // JSON null: the token never expires
	if ttl := t.ttl(); ttl > 0 {
		row.Expiry = now.Add(ttl)
		expiry = drf.FormatDateTime(row.Expiry)
	}
	err := h.knox.KnoxCreate(ctx, row, t.LimitPerUser)
	if errors.Is(err, store.ErrTokenLimit) {
		loginTokenLimit.Inc()
		drf.WriteJSON(w, http.StatusForbidden, indent, drf.Member{Key: "error", Value: drf.MsgTokenLimit})
		return nil
	}
	if err == nil && !loginFirst {
		err = h.knox.SetLastLogin(ctx, user.ID, now)
	}
	if err != nil {
		loginUnavailable.Inc()
		return h.unavailable(w, err)
	}
	loginSuccess.Inc()
	drf.WriteJSON(w, http.StatusOK, indent, drf.Member{Key: "expiry", Value: expiry}, drf.Member{Key: "token", Value: token})
	return nil
}
