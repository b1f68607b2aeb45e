package tokenauth

import (
	"net/http"
	"strconv"
)

// DRF's messages, verbatim (rest_framework/authentication.py, exceptions.py).
const (
	detailNotProvided    = "Authentication credentials were not provided."
	detailNoCredentials  = "Invalid token header. No credentials provided."
	detailSpaces         = "Invalid token header. Token string should not contain spaces."
	detailInvalidChars   = "Invalid token header. Token string should not contain invalid characters."
	detailInvalidToken   = "Invalid token."
	detailInactive       = "User inactive or deleted."
	detailUnavailable    = "Service temporarily unavailable, try again later."
	unavailableRetryWait = "1"
)

// drfError is one precomputed DRF error response: its status for the
// challenge case and its compact JSON body.
type drfError struct {
	detail string
	body   []byte
	length string
}

func newDRFError(detail string) drfError {
	// The details are plain ASCII without quotes or backslashes, so the
	// compact JSON that DRF's JSONRenderer writes is a plain concatenation.
	b := []byte(`{"detail":"` + detail + `"}`)
	return drfError{detail: detail, body: b, length: strconv.Itoa(len(b))}
}

var (
	errNotProvided   = newDRFError(detailNotProvided)
	errNoCredentials = newDRFError(detailNoCredentials)
	errSpaces        = newDRFError(detailSpaces)
	errInvalidChars  = newDRFError(detailInvalidChars)
	errInvalidToken  = newDRFError(detailInvalidToken)
	errInactive      = newDRFError(detailInactive)
	errUnavailable   = newDRFError(detailUnavailable)
)

// headerErrors maps a failed parse to its response.
var headerErrors = [...]*drfError{
	headerNoCredentials: &errNoCredentials,
	headerSpaces:        &errSpaces,
	headerInvalidChars:  &errInvalidChars,
}

// refuse answers an authentication failure with the handler's status and
// challenge; indented when the login endpoint negotiated an indent.
func (h *TokenAuth) refuse(w http.ResponseWriter, e *drfError, indent int) {
	if indent < 0 {
		writeDRFError(w, h.status, h.challenge, e)
		return
	}
	if h.challenge != "" {
		w.Header()["Www-Authenticate"] = []string{h.challenge}
	}
	writeJSON(w, h.status, indent, jsonPair{"detail", e.detail})
}

// writeDRFError writes e as DRF's exception handler does: status, the
// challenge header when there is one, Content-Type application/json (no
// charset) and the compact body.
func writeDRFError(w http.ResponseWriter, status int, challenge string, e *drfError) {
	h := w.Header()
	if challenge != "" {
		h["Www-Authenticate"] = []string{challenge}
	}
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{e.length}
	w.WriteHeader(status)
	_, _ = w.Write(e.body)
}
