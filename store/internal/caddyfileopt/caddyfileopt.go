// Package caddyfileopt reads what the Caddyfile blocks of every store have
// in common: `store <kind> [<arg>] { … }`, options without arguments, and
// durations that must be positive. It is Caddyfile glue shared by the
// store modules, with the messages they give.
package caddyfileopt

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Options are the options of a store's block by name, each read with the
// dispenser on the option's name.
type Options map[string]func() error

// Block reads a store's block, `<kind> [<arg>] { … }` (the rest of the
// handler's `store` line): its one optional argument into *arg, then each
// option in the block. An option named argName sets *arg from its one
// argument; the others are read by opts, and any other name is refused as
// an unrecognized option of the kind. An option given twice (the argument
// too: on the line and in the block) is refused as already specified.
// After each option, check (the store's validate, which holds its rules)
// runs, if not nil, so that its error names the line that made the config
// invalid.
func Block(d *caddyfile.Dispenser, kind, argName string, arg *string, opts Options, check func() error) error {
	d.Next() // the store kind
	seen := make(map[string]bool)
	if d.NextArg() {
		*arg = d.Val()
		seen[argName] = true
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] {
			return d.Errf("%s already specified", name)
		}
		seen[name] = true
		read, ok := opts[name]
		switch {
		case name == argName:
			if err := String(d, arg); err != nil {
				return err
			}
		case !ok:
			return d.Errf("unrecognized %s store option '%s'", kind, name)
		default:
			if err := read(); err != nil {
				return err
			}
		}
		if check != nil {
			if err := check(); err != nil {
				return d.WrapErr(err)
			}
		}
	}
	return nil
}

// String reads an option's one argument into *v.
func String(d *caddyfile.Dispenser, v *string) error {
	if !d.Args(v) || d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Flag reads an option that takes no argument, such as create: it sets *v.
func Flag(d *caddyfile.Dispenser, v *bool) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	*v = true
	return nil
}

// PositiveDuration reads an option's one argument, a Caddy duration
// greater than zero, into *v.
func PositiveDuration(d *caddyfile.Dispenser, v *caddy.Duration) error {
	name := d.Val()
	if !d.NextArg() {
		return d.ArgErr()
	}
	dur, err := caddy.ParseDuration(d.Val())
	if err != nil {
		return d.Errf("%s %q: %v", name, d.Val(), err)
	}
	if dur <= 0 {
		return d.Errf("%s must be positive, got %s", name, d.Val())
	}
	*v = caddy.Duration(dur)
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}
