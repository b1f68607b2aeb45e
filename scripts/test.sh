#!/usr/bin/env bash
# make test: every test, as CI runs it. Installs missing Debian packages
# (as root), checks formatting and vet, starts a throwaway PostgreSQL
# cluster on 127.0.0.1, runs `go test -race ./...`, then the timing tests
# without -race and every benchmark once, and stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

# caddytest binds localhost:2999 and :9080: one run at a time on a machine.
exec 9>/tmp/caddy-tokenauth-test.lock
flock 9

bash scripts/deps.sh
go mod download

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...

pgdir=$(mktemp -d /tmp/tokenauth-pg.XXXXXX)
cleanup() {
	bash scripts/pg-cluster.sh stop "$pgdir" >/dev/null 2>&1 || true
	rm -rf "$pgdir"
}
trap cleanup EXIT
eval "$(bash scripts/pg-cluster.sh start "$pgdir")"

go test -race -count=1 -timeout 45m ./...

# What -race must leave out: timing tests and the default-cost hash vectors
# (the race detector slows hashing several times, unevenly), run without it,
# one package at a time.
go test -count=1 -p 1 -timeout 10m -run 'Timing|TakeAsLong|Expensive' . ./password/

# Every benchmark once, so that none rots unseen (the figures themselves come
# from make bench and bench/).
go test -count=1 -p 1 -run '^$' -bench . -benchtime 1x ./...
