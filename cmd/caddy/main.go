// Command caddy is Caddy with the standard modules and token_auth, for a
// plain `go build ./cmd/caddy` (xcaddy builds the same binary).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/tokenauth/caddy-tokenauth"
)

func main() {
	caddycmd.Main()
}
