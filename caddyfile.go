package tokenauth

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/tokenauth/caddy-tokenauth/store"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("token_auth", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("token_auth", httpcaddyfile.Before, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var ta TokenAuth
	err := ta.UnmarshalCaddyfile(h.Dispenser)
	return &ta, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	token_auth [<matcher>] {
//		store sqlite [<path>]          # default: the embedded store
//		store sqlite {
//			path          <path>
//			create
//			query_timeout <duration>
//		}
//		store postgres <dsn>
//		store postgres {
//			dsn           <dsn>
//			max_conns     <n>
//			query_timeout <duration>
//			schema        <name>
//			create
//		}
//		keyword      <word>            # default: Token
//		optional [read_only]           # DRF AllowAny (IsAuthenticatedOrReadOnly): anonymous requests (GET, HEAD, OPTIONS) pass
//		require [staff] [superuser] [group <name>…] [perm <app_label.codename>…]
//		                               # alternatives; several require lines must all hold
//		no_challenge                   # 403 without WWW-Authenticate instead of 401
//		login <path> {                 # DRF's obtain_auth_token
//			throttle       <rate>      # e.g. 5/min, per client IP
//			max_body       <size>      # default 64KiB
//			body_timeout   <duration>  # time to send the body; default 5s
//			upgrade_hashes             # rewrite outdated password hashes on login
//		}
//		logout <path>                  # POST deletes the caller's token: 204
//		logout_all <path>              # knox: POST deletes all the user's tokens: 204
//		tokens drf {                   # DRF's authtoken_token (the default)
//			max_age <duration>         # refuse tokens created longer ago
//		}
//		tokens knox {                  # django-rest-knox's knox_authtoken
//			ttl <duration>|none        # expiry of new tokens; default 10h
//			limit_per_user <n>         # default none
//			auto_refresh               # move the expiry on use
//			max_ttl <duration>         # cap of auto_refresh after created; default none
//			min_refresh_interval <d>   # default 60s
//			prefix <text>              # starts new keys; at most 10 characters
//		}
//		failure_throttle <rate>        # per client IP, for refused tokens
//		cache off
//		cache {
//			ttl          <duration>    # default 30s with pushed changes, else 5s
//			negative_ttl <duration>    # default 5s
//			size         <entries>     # default 100000
//		}
//		key_format hex40|any           # default hex40
//	}
func (h *TokenAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] && opt != "require" { // require lines add up
			return d.Errf("%s already specified", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "store":
			err = h.unmarshalStore(d)
		case "keyword":
			err = oneArg(d, &h.Keyword)
		case "optional":
			err = h.unmarshalOptional(d)
		case "require":
			err = h.unmarshalRequire(d)
		case "no_challenge":
			h.NoChallenge, err = true, noArgs(d)
		case "login":
			h.Login = new(Login)
			if err = oneArg(d, &h.Login.Path); err == nil {
				err = h.Login.unmarshalBlock(d, h.validate)
			}
		case "logout":
			err = oneArg(d, &h.Logout)
		case "logout_all":
			err = oneArg(d, &h.LogoutAll)
		case "tokens":
			h.Tokens = new(Tokens)
			err = h.Tokens.unmarshalCaddyfile(d, h.validate)
		case "cache":
			h.Cache = new(Cache)
			err = h.Cache.unmarshalCaddyfile(d, h.validate)
		case "key_format":
			err = oneArg(d, &h.KeyFormat)
		case "failure_throttle":
			err = oneArg(d, &h.FailureThrottle)
		default:
			return d.Errf("unrecognized token_auth option '%s'", opt)
		}
		if err != nil {
			return err
		}
		// The rules are validate's alone; checked after each option, so
		// that an error names the line that made the config invalid.
		if err := h.validate(); err != nil {
			return d.WrapErr(err)
		}
	}
	return nil
}

// unmarshalStore reads `store <kind> …` through the store module's own
// UnmarshalCaddyfile.
func (h *TokenAuth) unmarshalStore(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	kind := d.Val()
	if _, err := caddy.GetModule(store.Namespace + "." + kind); err != nil {
		return d.Errf("unknown store kind '%s' (want one of: %s)", kind, strings.Join(storeKinds(), ", "))
	}
	unm, err := caddyfile.UnmarshalModule(d, store.Namespace+"."+kind)
	if err != nil {
		return err
	}
	h.StoreRaw = caddyconfig.JSONModuleObject(unm, "kind", kind, nil)
	return nil
}

// unmarshalCaddyfile reads `cache off` or `cache { … }`, running check
// after each option.
func (c *Cache) unmarshalCaddyfile(d *caddyfile.Dispenser, check func() error) error {
	if d.NextArg() {
		if d.Val() != "off" {
			return d.Errf("cache %q: want off, or a block", d.Val())
		}
		c.Off = true
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("cache %s already specified", opt)
		}
		seen[opt] = true
		if opt != "ttl" && opt != "negative_ttl" && opt != "size" {
			return d.Errf("unrecognized cache option '%s'", opt)
		}
		var val string
		if err := oneArg(d, &val); err != nil {
			return err
		}
		switch opt {
		case "ttl", "negative_ttl":
			dur, err := positiveDuration(d, opt, val)
			if err != nil {
				return err
			}
			if opt == "ttl" {
				c.TTL = dur
			} else {
				c.NegativeTTL = dur
			}
		case "size":
			n, err := strconv.Atoi(val)
			if err != nil || n == 0 {
				return d.Errf("size %q: want a positive number of entries", val)
			}
			c.Size = n
		}
		if err := check(); err != nil {
			return d.WrapErr(err)
		}
	}
	return nil
}

// unmarshalBlock reads the optional block after `login <path>`, running
// check after each option.
func (l *Login) unmarshalBlock(d *caddyfile.Dispenser, check func() error) error {
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("login %s already specified", opt)
		}
		seen[opt] = true
		switch opt {
		case "upgrade_hashes", "throttle", "max_body", "body_timeout":
		default:
			return d.Errf("unrecognized login option '%s'", opt)
		}
		var val string
		if opt == "upgrade_hashes" {
			l.UpgradeHashes = true
			if err := noArgs(d); err != nil {
				return err
			}
		} else if err := oneArg(d, &val); err != nil {
			return err
		}
		switch opt {
		case "throttle":
			l.Throttle = val
		case "max_body":
			n, err := humanize.ParseBytes(val)
			if err != nil || n == 0 || n > math.MaxInt64 {
				return d.Errf("max_body %q: want a size such as 64KiB, up to 1GiB", val)
			}
			l.MaxBody = int64(n)
		case "body_timeout":
			dur, err := positiveDuration(d, opt, val)
			if err != nil {
				return err
			}
			l.BodyTimeout = dur
		}
		if err := check(); err != nil {
			return d.WrapErr(err)
		}
	}
	return nil
}

// oneArg reads the one argument of an option.
func oneArg(d *caddyfile.Dispenser, target *string) error {
	if !d.Args(target) {
		return d.ArgErr()
	}
	return noArgs(d)
}

// noArgs refuses arguments after an option that takes none.
func noArgs(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// positiveDuration converts a duration. Zero is refused: in the JSON an
// absent value and 0 both mean the default, which the Caddyfile says by
// leaving the option out. A negative duration converts, for validate to
// refuse as it refuses it in the JSON.
func positiveDuration(d *caddyfile.Dispenser, opt, val string) (caddy.Duration, error) {
	dur, err := caddy.ParseDuration(val)
	if err != nil || dur == 0 {
		return 0, d.Errf("%s %q: want a positive duration", opt, val)
	}
	return caddy.Duration(dur), nil
}

// storeKinds lists the registered store modules by kind.
func storeKinds() []string {
	var kinds []string
	for _, info := range caddy.GetModules(store.Namespace) {
		kinds = append(kinds, info.ID.Name())
	}
	slices.Sort(kinds)
	return kinds
}

// Interface guard
var _ caddyfile.Unmarshaler = (*TokenAuth)(nil)
