#!/usr/bin/env bash
# bench/instructions.sh — instructions Caddy executes per request, by setup.
#
#   bash bench/instructions.sh
#
# Throughput on a shared 2-core machine swings by several percent from run to
# run, more than the handler's own cost. Instruction counts do not: this
# script runs ONE Caddy under valgrind's callgrind (GOMAXPROCS=1, async
# preemption off, which callgrind needs), loads each site with wrk, counts
# the instructions the process ran during the load (callgrind_control zeroes
# the counters before and dumps them after), and divides by the requests
# served. Everything Caddy does for a request counts: Go's HTTP parsing,
# Caddy's routing, the handler, the garbage collector.
#
# Setups (one site each, all `respond "ok"`):
#   respond         no auth: the baseline
#   respond-header  no auth, sent the same Authorization header as cache-hit
#   cache-hit       token_auth, sqlite store, cache on, one valid token
#
# cache-hit ÷ respond-header is the handler's own cost; respond-header ÷
# respond is what receiving the header costs Go and Caddy.
#
# Knobs (environment): ROUNDS (5), DURATION (8s of load per count), GOGC
# (100, Go's default; off leaves out the collector, about a third of the
# instructions, and the noise of how many collections fall in a count), KEEP=1
# keeps the temp dir (the callgrind dumps can be read with callgrind_annotate).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8s}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

for tool in valgrind:valgrind callgrind_control:valgrind wrk:wrk curl:curl; do
	cmd=${tool%%:*} pkg=${tool#*:}
	if ! command -v "$cmd" >/dev/null; then
		[ "$root" = 1 ] || die "$cmd is missing (Debian package $pkg); install it and run again"
		apt_install "$pkg"
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tokenauth-instr.XXXXXX")
vgpid=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$vgpid" ]; then
		kill "$vgpid" 2>/dev/null || true
		wait "$vgpid" 2>/dev/null || true
	fi
	if [ "${KEEP:-0}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building Caddy"
go build -o "$tmp/caddy" ./cmd/caddy
caddy=$tmp/caddy
export XDG_DATA_HOME=$tmp/data XDG_CONFIG_HOME=$tmp/config

db=$tmp/db.sqlite3
"$caddy" token migrate --store "sqlite:$db" >/dev/null 2>>"$tmp/setup.log"
out=$(printf 'bench-password\n' | "$caddy" token adduser bench --password-stdin --store "sqlite:$db" 2>>"$tmp/setup.log")
key=${out#Generated token }
key=${key%% *}
[[ $key =~ ^[0-9a-f]{40}$ ]] || die "no token from: $out"

names=(respond respond-header cache-hit)
auths=("" "Token $key" "Token $key")
ports=()
for _ in "${names[@]}"; do ports+=("$(free_port)"); done
caddyfile_global >"$tmp/Caddyfile"
cat >>"$tmp/Caddyfile" <<CADDYFILE

http://:${ports[0]} {
	respond "ok"
}

http://:${ports[1]} {
	respond "ok"
}

# cache-hit. The SQLite poller reads the file 40 times a second while the
# cache holds a live entry, by the clock; under callgrind a request takes
# some 50 times longer, so the poller's reads would weigh 50 times more per
# request than in a real run. A ttl longer than the run keeps the cache
# live throughout, so the poller runs during every setup's count alike.
http://:${ports[2]} {
	token_auth {
		store sqlite $db
		cache {
			ttl 1h
		}
	}
	respond "ok"
}
CADDYFILE

log "starting Caddy under callgrind"
GOGC=${GOGC:-100} GODEBUG=asyncpreemptoff=1 GOMAXPROCS=1 valgrind --tool=callgrind \
	--callgrind-out-file="$tmp/callgrind.out" \
	"$caddy" run --config "$tmp/Caddyfile" --adapter caddyfile >"$tmp/caddy.log" 2>&1 &
vgpid=$!
for _ in $(seq 120); do
	curl -s -o /dev/null "http://127.0.0.1:${ports[0]}/" && break
	kill -0 "$vgpid" 2>/dev/null || die "Caddy did not start under valgrind: $(tail -20 "$tmp/caddy.log")"
	sleep 0.5
done
for i in "${!names[@]}"; do
	args=()
	[ -z "${auths[$i]}" ] || args=(-H "Authorization: ${auths[$i]}")
	code=$(curl -s -o /dev/null -w '%{http_code}' "${args[@]}" "http://127.0.0.1:${ports[$i]}/")
	[ "$code" = 200 ] || die "${names[$i]}: $code, want 200"
done
curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${ports[2]}/" | grep -qx 401 || die "cache-hit: no 401 without the token"

count() { # index duration -> "requests instructions"
	local i=$1 args=(-t1 -c2 -d"$2" -s "$ROOT/bench/report.lua") line dump
	[ -z "${auths[$i]}" ] || args+=(-H "Authorization: ${auths[$i]}")
	callgrind_control -z "$vgpid" >/dev/null 2>&1
	line=$(wrk "${args[@]}" "http://127.0.0.1:${ports[$i]}/" | grep '^BENCH ')
	callgrind_control -d "$vgpid" >/dev/null 2>&1
	dump=$(ls -t "$tmp"/callgrind.out.* | head -1)
	[[ $line =~ requests=([0-9]+).*non2xx=0\ errors=0 ]] || die "${names[$i]}: bad run: $line"
	echo "${BASH_REMATCH[1]} $(sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$dump" | head -1)"
}

log "warming up"
for i in "${!names[@]}"; do count "$i" 2s >/dev/null; done
results=$tmp/results.tsv
: >"$results"
for r in $(seq "$ROUNDS"); do
	for i in "${!names[@]}"; do
		read -r n ir < <(count "$i" "$DURATION")
		log "round $r ${names[$i]}: $n requests, $((ir / n)) instructions each"
		printf '%s\t%s\t%s\n' "${names[$i]}" "$n" "$ir" >>"$results"
	done
done

B_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') B_GO=$(go version) B_CADDY=$("$caddy" version) \
	B_VG=$(valgrind --version) B_ROUNDS=$ROUNDS B_DURATION=$DURATION B_GOGC=${GOGC:-100} \
	"$PY" - "$results" "$ROOT/bench/instructions.md" <<'PY'
import os, statistics, sys
per = {}
for line in open(sys.argv[1]):
    name, n, ir = line.split()
    per.setdefault(name, []).append(int(ir) / int(n))
med = {k: statistics.median(v) for k, v in per.items()}
base, hdr, hit = med["respond"], med["respond-header"], med["cache-hit"]
rows = [(name, "%.0f" % med[name], "%.3f" % (base / med[name]), "%.0f" % (med[name] - base))
        for name in ["respond", "respond-header", "cache-hit"]]
own = "the handler's own cost (cache-hit − respond-header): %.0f instructions, %.1f %% of a request" % (hit - hdr, 100 * (hit - hdr) / hdr)
header = "receiving the header (respond-header − respond): %.0f instructions, %.1f %% of a request" % (hdr - base, 100 * (hdr - base) / base)
print("%-15s %14s %12s %8s" % ("setup", "instr/request", "respond ÷ it", "extra"))
for r in rows:
    print("%-15s %14s %12s %8s" % r)
print()
print(own)
print(header)
e = os.environ
md = ["# token_auth instructions per request", "",
      "Written by `bench/instructions.sh`: one Caddy under callgrind, the counters zeroed before",
      "and dumped after each load, divided by the requests served (median of %s rounds of %s)." % (e["B_ROUNDS"], e["B_DURATION"]),
      "User-space instructions only: the kernel's share of a request is not counted.", "",
      "- Date: " + e["B_DATE"], "- Go: " + e["B_GO"], "- Caddy: " + e["B_CADDY"], "- " + e["B_VG"],
      "- GOGC=" + e["B_GOGC"], "",
      "| setup | instructions per request | respond ÷ setup | extra |", "|---|---:|---:|---:|"]
md += ["| %s | %s | %s | %s |" % r for r in rows]
md += ["", "- " + own, "- " + header, ""]
open(sys.argv[2], "w").write("\n".join(md))
print("bench: wrote bench/instructions.md", file=sys.stderr)
PY
