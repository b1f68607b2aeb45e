package postgres

import (
	"cmp"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// mask stands in for a password in everything the store reports.
const mask = "xxxxx"

// kvPassword matches a password or sslpassword setting of a key=value
// connection string, quoted ('…' with \' and \\ escapes) or not.
var kvPassword = regexp.MustCompile(`(?i)(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)`)

// queryPassword matches a password or sslpassword parameter of a URL's query.
var queryPassword = regexp.MustCompile(`(?i)([?&](?:ssl)?password=)([^&#]*)`)

// RedactDSN returns a connection string, as a URL or in key=value form,
// fit for printing: the password of a URL's user info and every password
// or sslpassword setting replaced by xxxxx, as the store itself shows its
// DSN in logs and errors. The caddy token command prints specs with it.
func RedactDSN(dsn string) string {
	r, _ := redactDSN(dsn)
	return r
}

// redactDSN returns dsn fit for logs and errors: the password of a URL's
// user info and every password or sslpassword setting, in a URL's query or
// in key=value form, replaced by xxxxx. It also returns the secrets it
// masked, as written and decoded, for scrubbing them out of other text.
func redactDSN(dsn string) (redacted string, secrets []string) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		redacted = kvPassword.ReplaceAllStringFunc(dsn, func(m string) string {
			sub := kvPassword.FindStringSubmatch(m)
			v := sub[2]
			secrets = append(secrets, v)
			if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
				v = v[1 : len(v)-1]
				secrets = append(secrets, v, strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(v))
			}
			return sub[1] + mask
		})
		return redacted, cleanSecrets(secrets)
	}

	scheme, rest, _ := strings.Cut(dsn, "://")
	if u, err := url.Parse(dsn); err == nil && u.Opaque == "" {
		// Exact: the user info is what Go's URL parser found.
		if pw, ok := u.User.Password(); ok {
			secrets = append(secrets, pw, url.PathEscape(pw), url.QueryEscape(pw), url.UserPassword("", pw).String()[1:])
			at := strings.Index(rest, "@"+u.Host)
			if at < 0 {
				at = strings.LastIndex(rest, "@")
			}
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				secrets = append(secrets, rest[colon+1:at])
				rest = rest[:colon+1] + mask + rest[at:]
			}
		}
	} else if at := strings.LastIndex(rest, "@"); at >= 0 {
		// Unparsable: mask everything that could be the password,
		// from the first colon to the last @.
		if colon := strings.Index(rest[:at], ":"); colon >= 0 {
			secrets = append(secrets, rest[colon+1:at])
			rest = rest[:colon+1] + mask + rest[at:]
		}
	}
	rest = queryPassword.ReplaceAllStringFunc(rest, func(m string) string {
		sub := queryPassword.FindStringSubmatch(m)
		secrets = append(secrets, sub[2])
		if v, err := url.QueryUnescape(sub[2]); err == nil {
			secrets = append(secrets, v)
		}
		return sub[1] + mask
	})
	return scheme + "://" + rest, cleanSecrets(secrets)
}

// cleanSecrets drops empty and repeated secrets and puts the longest first,
// so that scrubbing a secret never leaves part of a longer one behind.
func cleanSecrets(secrets []string) []string {
	secrets = slices.DeleteFunc(secrets, func(s string) bool { return s == "" || s == mask })
	slices.SortFunc(secrets, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	return slices.Compact(secrets)
}

// scrub returns text with every secret in it replaced by xxxxx.
func scrub(text string, secrets []string) string {
	for _, s := range secrets {
		text = strings.ReplaceAll(text, s, mask)
	}
	return text
}

// scrubbedError is an error whose text has been scrubbed of secrets; it
// still unwraps to the original, for errors.Is and errors.As.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrubError returns err with every secret taken out of its text.
func scrubError(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := scrub(msg, secrets)
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}
