package drf

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Error is one refusal of the token check: DRF's detail, with the compact
// body DRF's exception handler writes for it made once, so that a refusal
// allocates nothing.
type Error struct {
	Detail string
	body   []byte
	length string
}

// Error returns the detail.
func (e *Error) Error() string { return e.Detail }

func newError(detail string) *Error {
	// The details are plain ASCII without quotes or backslashes, so the
	// compact JSON that DRF's JSONRenderer writes is a plain concatenation.
	b := []byte(`{"detail":"` + detail + `"}`)
	return &Error{Detail: detail, body: b, length: strconv.Itoa(len(b))}
}

// Write answers e as DRF's exception handler does: status, the challenge
// in WWW-Authenticate when there is one, Content-Type application/json (no
// charset) and the body, compact or, with indent ≥ 0, indented as the
// client negotiated.
func (e *Error) Write(w http.ResponseWriter, status int, challenge string, indent int) {
	h := w.Header()
	if challenge != "" {
		h["Www-Authenticate"] = []string{challenge}
	}
	if indent >= 0 {
		WriteJSON(w, status, indent, Member{"detail", e.Detail})
		return
	}
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{e.length}
	w.WriteHeader(status)
	_, _ = w.Write(e.body)
}

// Member is one member of a JSON object written in order.
type Member struct {
	Key   string
	Value any
}

// WriteJSON writes status and the members as DRF's JSONRenderer would:
// compact, UTF-8 unescaped, or indented when the client asked for
// "application/json; indent=N" (indent ≥ 0).
func WriteJSON(w http.ResponseWriter, status, indent int, members ...Member) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			buf.WriteByte(',')
		}
		_ = enc.Encode(m.Key)
		buf.Truncate(buf.Len() - 1) // Encode's newline
		buf.WriteByte(':')
		_ = enc.Encode(m.Value)
		buf.Truncate(buf.Len() - 1)
	}
	buf.WriteByte('}')
	writeBody(w, status, indent, buf.Bytes())
}

func writeBody(w http.ResponseWriter, status, indent int, body []byte) {
	if indent >= 0 {
		var out bytes.Buffer
		_ = json.Indent(&out, body, "", strings.Repeat(" ", indent))
		body = out.Bytes()
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Negotiate runs DRF's content negotiation for a JSON-only view. It
// reports whether application/json is acceptable and, if the chosen Accept
// entry carries indent=N, the indent (-1 otherwise; at most 8).
func Negotiate(r *http.Request) (ok bool, indent int) {
	accept := strings.Join(r.Header.Values("Accept"), ",")
	if strings.TrimSpace(accept) == "" {
		return true, -1
	}
	best, indent := -1, -1
	for _, entry := range strings.Split(accept, ",") {
		full, params, _ := strings.Cut(entry, ";")
		full = strings.TrimSpace(full)
		main, sub, _ := strings.Cut(full, "/")
		if (main != "*" && main != "application") || (sub != "*" && sub != "json") {
			continue
		}
		// DRF's precedence: */* < type/* < type/subtype < with params.
		prec := 0
		switch {
		case main == "*":
		case sub == "*":
			prec = 1
		default:
			prec = 2
		}
		entryIndent := -1
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(p, "=")
			k = strings.ToLower(strings.TrimSpace(k))
			if k == "" || k == "q" {
				continue
			}
			if prec == 2 {
				prec = 3
			}
			if k == "indent" {
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					entryIndent = min(max(n, 0), 8)
				}
			}
		}
		if prec > best {
			best, indent = prec, entryIndent
		}
	}
	return best >= 0, indent
}
