package tokenauth

import (
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/tokenauth/caddy-tokenauth/internal/drf"
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
//		optional                       # DRF AllowAny: anonymous requests pass
//		no_challenge                   # 403 without WWW-Authenticate instead of 401
//		login <path> {                 # DRF's obtain_auth_token
//			throttle       <rate>      # e.g. 5/min, per client IP
//			max_body       <size>      # default 64KiB
//			body_timeout   <duration>  # time to send the body; default 5s
//			upgrade_hashes             # rewrite outdated password hashes on login
//		}
//		logout <path>                  # POST deletes the caller's token: 204
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
	for d.NextBlock(0) {
		switch d.Val() {
		case "store":
			if h.StoreRaw != nil {
				return d.Err("store already specified")
			}
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
		case "keyword":
			if !d.Args(&h.Keyword) {
				return d.ArgErr()
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			if err := validKeyword(h.Keyword); err != nil {
				return d.Err(err.Error())
			}
		case "optional":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Optional = true
		case "no_challenge":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.NoChallenge = true
		case "login":
			if h.Login != nil {
				return d.Err("login already specified")
			}
			h.Login = new(Login)
			if !d.Args(&h.Login.Path) {
				return d.ArgErr()
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			if err := h.Login.unmarshalBlock(d); err != nil {
				return err
			}
		case "logout":
			if !d.Args(&h.Logout) {
				return d.ArgErr()
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "cache":
			if h.Cache != nil {
				return d.Err("cache already specified")
			}
			h.Cache = new(Cache)
			if d.NextArg() {
				if d.Val() != "off" {
					return d.Errf("cache %q: want off, or a block", d.Val())
				}
				h.Cache.Off = true
				if d.NextArg() {
					return d.ArgErr()
				}
			}
			if err := h.Cache.unmarshalBlock(d); err != nil {
				return err
			}
		case "key_format":
			if !d.Args(&h.KeyFormat) {
				return d.ArgErr()
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			if h.KeyFormat != "hex40" && h.KeyFormat != "any" {
				return d.Errf("key_format %q: want hex40 or any", h.KeyFormat)
			}
		case "failure_throttle":
			if !d.Args(&h.FailureThrottle) {
				return d.ArgErr()
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			if _, err := drf.ParseRate(h.FailureThrottle); err != nil {
				return d.Errf("failure_throttle: %v", err)
			}
		default:
			return d.Errf("unrecognized token_auth option '%s'", d.Val())
		}
	}
	return nil
}

// unmarshalBlock reads the block after `cache`.
func (c *Cache) unmarshalBlock(d *caddyfile.Dispenser) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if !d.NextArg() {
			return d.ArgErr()
		}
		switch opt {
		case "ttl", "negative_ttl":
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("%s %q: want a positive duration", opt, d.Val())
			}
			if opt == "ttl" {
				c.TTL = caddy.Duration(dur)
			} else {
				c.NegativeTTL = caddy.Duration(dur)
			}
		case "size":
			n, err := strconv.Atoi(d.Val())
			if err != nil || n <= 0 {
				return d.Errf("size %q: want a positive number of entries", d.Val())
			}
			c.Size = n
		default:
			return d.Errf("unrecognized cache option '%s'", opt)
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// unmarshalBlock reads the optional block after `login <path>`.
func (l *Login) unmarshalBlock(d *caddyfile.Dispenser) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "throttle":
			if !d.Args(&l.Throttle) {
				return d.ArgErr()
			}
			if _, err := drf.ParseRate(l.Throttle); err != nil {
				return d.Errf("throttle: %v", err)
			}
		case "max_body":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := humanize.ParseBytes(d.Val())
			if err != nil || n == 0 || n > 1<<30 {
				return d.Errf("max_body %q: want a size such as 64KiB, up to 1GiB", d.Val())
			}
			l.MaxBody = int64(n)
		case "body_timeout":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("body_timeout %q: want a positive duration", d.Val())
			}
			l.BodyTimeout = caddy.Duration(dur)
		case "upgrade_hashes":
			l.UpgradeHashes = true
		default:
			return d.Errf("unrecognized login option '%s'", d.Val())
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
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
