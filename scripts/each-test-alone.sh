#!/usr/bin/env bash
# each-test-alone.sh: every test and every subtest, run on its own
# (-run '^Top$/^sub$'), so that none passes only because another ran first.
# Not run by CI (it takes a while); run it after moving tests around.
#
#   bash scripts/each-test-alone.sh                 # every package
#   bash scripts/each-test-alone.sh ./store/sqlite  # some
#   NAMES='^TestRevocation' bash scripts/each-test-alone.sh ./integration
#                                                   # only the names matching
#
# Each package's test binary is built once (without -race) and run once
# whole, with -v, to list its tests; then each name is run alone in the
# package's directory. Prints one line per failure (of the whole run too)
# and ends with "N passed, M failed". Starts a throwaway PostgreSQL
# cluster for the postgres and integration tests, and takes make test's
# lock for the integration package (caddytest's fixed ports).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

work=$(mktemp -d /tmp/tokenauth-alone.XXXXXX)
pgdir=$(mktemp -d /tmp/tokenauth-pg.XXXXXX)
cleanup() {
	bash "$root/scripts/pg-cluster.sh" stop "$pgdir" >/dev/null 2>&1 || true
	rm -rf "$pgdir" "$work"
}
trap cleanup EXIT
eval "$(bash scripts/pg-cluster.sh start "$pgdir" 2>/dev/null)"

pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || mapfile -t pkgs < <(go list ./...)

# quote: a test name as an anchored -run pattern, each level on its own.
quote() {
	python3 -c '
import re, sys
levels = sys.argv[1].split("/")
print("/".join("^" + re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", l) + "$" for l in levels))' "$1"
}

passed=0 failed=0
for pkg in "${pkgs[@]}"; do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	case $pkg in
	*/integration) exec 9>/tmp/caddy-tokenauth-test.lock && flock 9 ;;
	esac
	bin="$work/$(echo "$pkg" | tr / _).test"
	go test -c -o "$bin" "$pkg"
	[ -x "$bin" ] || continue # no test files
	# A failure in the whole run is told and counted (set -e would end
	# the script here without a word); the names it listed still run.
	if ! (cd "$dir" && "$bin" -test.v -test.count=1 -test.timeout 20m >"$work/whole.out" 2>&1); then
		failed=$((failed + 1))
		echo "FAILED whole: $pkg"
		grep -E -- '--- FAIL|^\s+\S+_test\.go:[0-9]+:|^(panic|FAIL)' "$work/whole.out" | head -5 | sed 's/^/    /' || true
	fi
	names=$(sed -n 's/^ *=== RUN *//p' "$work/whole.out" | sort -u)
	while IFS= read -r name; do
		[ -n "$name" ] || continue
		[[ $name =~ ${NAMES:-.} ]] || continue
		if out=$(cd "$dir" && "$bin" -test.run "$(quote "$name")" -test.count=1 -test.timeout 5m 2>&1); then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
			echo "FAILED alone: $pkg $name"
			echo "$out" | grep -E '^\s+\S+_test\.go:[0-9]+:|^(panic|FAIL)' | head -5 | sed 's/^/    /' || true
		fi
	done <<<"$names"
	echo "$pkg: done ($passed passed, $failed failed so far)" >&2
	exec 9>&- # the lock, if taken
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
