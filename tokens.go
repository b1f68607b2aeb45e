package tokenauth

import (
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Tokens chooses the token table and its rules.
//
// With "kind": "drf" (the default) keys are DRF's, in authtoken_token, one
// per user. With "kind": "knox" they are django-rest-knox's, in
// knox_authtoken: the table holds a SHA-512 digest and a 15-character
// lookup prefix, never the key; each token has an expiry, a user has many.
type Tokens struct {
	// Kind is "drf" or "knox". Default: "drf".
	Kind string `json:"kind,omitempty"`

	// MaxAge (drf only) refuses, with "Invalid token.", a DRF token whose
	// created is older. Default: none (DRF tokens never expire).
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// TTL (knox) is the expiry of new tokens, knox's TOKEN_TTL. Default:
	// 10h.
	TTL caddy.Duration `json:"ttl,omitempty"`
	// NeverExpire (knox) makes new tokens without expiry (knox's
	// TOKEN_TTL = None; `ttl none` in the Caddyfile). Default: false.
	NeverExpire bool `json:"never_expire,omitempty"`
	// LimitPerUser (knox) is TOKEN_LIMIT_PER_USER: login refuses a user
	// who already holds this many live tokens. Default: none.
	LimitPerUser int `json:"limit_per_user,omitempty"`
	// AutoRefresh (knox) moves a token's expiry to now + ttl when it is
	// used, as knox's AUTO_REFRESH. Default: false.
	AutoRefresh bool `json:"auto_refresh,omitempty"`
	// MaxTTL (knox) caps auto-refresh at created + max_ttl, knox's
	// AUTO_REFRESH_MAX_TTL. Default: none.
	MaxTTL caddy.Duration `json:"max_ttl,omitempty"`
	// MinRefreshInterval (knox) is knox's MIN_REFRESH_INTERVAL: the expiry
	// is written only when it moves by more. Default: 60s.
	MinRefreshInterval caddy.Duration `json:"min_refresh_interval,omitempty"`
	// Prefix (knox) starts every new key, knox's TOKEN_PREFIX; at most 10
	// characters. Default: none.
	Prefix string `json:"prefix,omitempty"`
}

// Token kinds.
const (
	tokensDRF  = "drf"
	tokensKnox = "knox"
)

// Knox defaults and limits (knox/settings.py).
const (
	defaultKnoxTTL            = 10 * time.Hour
	defaultMinRefreshInterval = 60 * time.Second
	maxKnoxPrefix             = 10
)

// knox reports whether the tokens are knox's.
func (t *Tokens) knox() bool { return t != nil && t.Kind == tokensKnox }

// ttl is the expiry of a new knox token; 0 for none.
func (t *Tokens) ttl() time.Duration {
	switch {
	case t.NeverExpire:
		return 0
	case t.TTL == 0:
		return defaultKnoxTTL
	}
	return time.Duration(t.TTL)
}

// minRefresh is MIN_REFRESH_INTERVAL.
func (t *Tokens) minRefresh() time.Duration {
	if t.MinRefreshInterval == 0 {
		return defaultMinRefreshInterval
	}
	return time.Duration(t.MinRefreshInterval)
}

// validate holds the rules of the tokens settings.
func (t *Tokens) validate() error {
	knoxOnly := t.TTL != 0 || t.NeverExpire || t.LimitPerUser != 0 || t.AutoRefresh ||
		t.MaxTTL != 0 || t.MinRefreshInterval != 0 || t.Prefix != ""
	switch t.Kind {
	case "", tokensDRF:
		if knoxOnly {
			return fmt.Errorf("tokens drf: ttl, limit_per_user, auto_refresh, max_ttl, min_refresh_interval and prefix are knox settings")
		}
	case tokensKnox:
		if t.MaxAge != 0 {
			return fmt.Errorf("tokens knox: max_age is a drf setting (knox tokens expire by ttl)")
		}
	default:
		return fmt.Errorf("tokens %q: want drf or knox", t.Kind)
	}
	for _, d := range []struct {
		name string
		v    caddy.Duration
	}{{"max_age", t.MaxAge}, {"ttl", t.TTL}, {"max_ttl", t.MaxTTL}, {"min_refresh_interval", t.MinRefreshInterval}} {
		if d.v < 0 {
			return fmt.Errorf("tokens %s %v: want a positive duration", d.name, time.Duration(d.v))
		}
	}
	switch {
	case t.NeverExpire && t.TTL != 0:
		return fmt.Errorf("tokens knox: ttl is both none and %v", time.Duration(t.TTL))
	case t.NeverExpire && t.AutoRefresh:
		return fmt.Errorf("tokens knox: auto_refresh needs a ttl (knox refreshes to now + TOKEN_TTL)")
	case t.LimitPerUser < 0:
		return fmt.Errorf("tokens limit_per_user %d: want a positive number", t.LimitPerUser)
	case len(t.Prefix) > maxKnoxPrefix:
		return fmt.Errorf("tokens prefix %q: at most %d characters (knox's MAXIMUM_TOKEN_PREFIX_LENGTH)", t.Prefix, maxKnoxPrefix)
	}
	for _, c := range []byte(t.Prefix) {
		if c <= ' ' || c >= 0x7f {
			return fmt.Errorf("tokens prefix %q: want visible ASCII characters", t.Prefix)
		}
	}
	return nil
}

// unmarshalCaddyfile reads `tokens drf|knox [{ … }]`, running check after
// each option.
func (t *Tokens) unmarshalCaddyfile(d *caddyfile.Dispenser, check func() error) error {
	if err := oneArg(d, &t.Kind); err != nil {
		return err
	}
	if err := check(); err != nil {
		return d.WrapErr(err)
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("tokens %s already specified", opt)
		}
		seen[opt] = true
		var val string
		switch opt {
		case "auto_refresh":
			t.AutoRefresh = true
			if err := noArgs(d); err != nil {
				return err
			}
		case "max_age", "ttl", "max_ttl", "min_refresh_interval", "limit_per_user", "prefix":
			if err := oneArg(d, &val); err != nil {
				return err
			}
		default:
			return d.Errf("unrecognized tokens option '%s'", opt)
		}
		var err error
		switch opt {
		case "max_age":
			t.MaxAge, err = positiveDuration(d, opt, val)
		case "ttl":
			if val == "none" {
				t.NeverExpire = true
			} else {
				t.TTL, err = positiveDuration(d, opt, val)
			}
		case "max_ttl":
			t.MaxTTL, err = positiveDuration(d, opt, val)
		case "min_refresh_interval":
			t.MinRefreshInterval, err = positiveDuration(d, opt, val)
		case "limit_per_user":
			n, perr := strconv.Atoi(val)
			if perr != nil || n <= 0 {
				return d.Errf("limit_per_user %q: want a positive number of tokens", val)
			}
			t.LimitPerUser = n
		case "prefix":
			t.Prefix = val
		}
		if err != nil {
			return err
		}
		if err := check(); err != nil {
			return d.WrapErr(err)
		}
	}
	return nil
}
