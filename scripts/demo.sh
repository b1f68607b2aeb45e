#!/usr/bin/env bash
# make run: build Caddy with token_auth, create a demo user and token in the
# embedded store, serve example.Caddyfile on localhost and print how to call it.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "Building Caddy with token_auth (the first build takes a few minutes)..."
go build -o bin/caddy ./cmd/caddy

# Keep the demo's embedded store and Caddy state inside the checkout.
export XDG_DATA_HOME="$PWD/.demo/data" XDG_CONFIG_HOME="$PWD/.demo/config"

password_file=.demo/password
if ! out=$(bin/caddy token create demo 2>/dev/null); then
	mkdir -p .demo
	head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$password_file"
	out=$(bin/caddy token adduser demo --password-stdin < "$password_file")
fi
password=$(cat "$password_file" 2>/dev/null || echo '<password>')
key=${out#Generated token }
key=${key%% *}

cat <<MSG

$out (embedded store: $XDG_DATA_HOME/caddy/token_auth/tokens.sqlite3)

Serving example.Caddyfile on http://localhost:8080 — try:

  curl -i -H "Authorization: Token $key" http://localhost:8080/
  curl -i -H "Authorization: Token $key" http://localhost:8080/api/hello
  curl -i http://localhost:8080/api/hello          # 401, DRF's JSON body
  curl -i http://localhost:8080/public/            # anonymous passes
  curl -i -d username=demo -d password=$password http://localhost:8080/api/auth-token/
  curl -i -X POST -H "Authorization: Token $key" http://localhost:8080/api/logout/   # revokes it

Manage tokens with:
  XDG_DATA_HOME=$XDG_DATA_HOME bin/caddy token list

Stop with Ctrl-C.
MSG
exec bin/caddy run --config example.Caddyfile --adapter caddyfile
