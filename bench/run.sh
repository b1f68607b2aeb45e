#!/usr/bin/env bash
# bench/run.sh — token_auth against the alternatives, side by side, in one run.
#
#   bash bench/run.sh
#
# Builds Caddy (go build ./cmd/caddy), starts ONE Caddy with one site per
# setup on 127.0.0.1 (each answers `respond "ok"`, the sites differ only in
# the auth handler in front of it), then loads every site with wrk, the
# setups alternating over several rounds, and prints the median req/s and
# p99 of each, relative to plain `respond` measured in the same run. The
# table also goes to bench/results.md. See bench/README.md.
#
# Setups:
#   respond        no auth: the baseline
#   respond-header no auth, but sent the same Authorization header
#   cache-hit      token_auth, sqlite store, cache on (default), one token
#   sqlite-nocache token_auth, sqlite store, cache off
#   pg-nocache     token_auth, postgres store, cache off (throwaway cluster)
#   basic_auth     Caddy's basic_auth, bcrypt (it caches the verification)
#   forward_auth   forward_auth to a DRF view under gunicorn (same sqlite db)
#
# Knobs (environment): ROUNDS (8), DURATION (3s per wrk run), WARMUP (1s),
# CONNS (32), PIN (0: no pinning; 1: wrk on CPU 0, the servers on CPU 1,
# see README.md for why 0), THREADS (wrk threads; 2, or 1 when pinned),
# GUNICORN_WORKERS (3, sync), KEEP=1 keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# The command as run, with any knob the caller set, for results.md.
command="bash bench/run.sh"
for v in ROUNDS DURATION WARMUP CONNS PIN THREADS GUNICORN_WORKERS; do
	if [ -n "${!v+x}" ]; then command="$v=${!v} $command"; fi
done

ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-3s}
WARMUP=${WARMUP:-1s}
CONNS=${CONNS:-32}
PIN=${PIN:-0}
GUNICORN_WORKERS=${GUNICORN_WORKERS:-3}
WRK=/usr/bin/wrk
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

if [ "$PIN" = 1 ] && { [ "$(nproc)" -lt 2 ] || ! command -v taskset >/dev/null; }; then
	log "PIN=1 needs 2 CPUs and taskset: running unpinned"
	PIN=0
fi
if [ "$PIN" = 1 ]; then
	THREADS=${THREADS:-1}
	on_client=(taskset -c 0)
	on_server=(taskset -c 1)
else
	THREADS=${THREADS:-2}
	on_client=()
	on_server=()
fi

# --- tools -----------------------------------------------------------------

if [ ! -x "$WRK" ]; then
	[ "$root" = 1 ] || die "$WRK is missing (Debian package wrk); install it and run again"
	apt_install wrk
fi

have_drf() { [ -x "$PY" ] && "$PY" -c 'import django, rest_framework' 2>/dev/null; }
have_gunicorn() { [ -x "$PY" ] && "$PY" -c 'import gunicorn' 2>/dev/null; }
drf=1
if ! have_drf || ! have_gunicorn; then
	if [ "$root" = 1 ]; then
		apt_install python3-djangorestframework gunicorn || true
	fi
	if ! have_drf || ! have_gunicorn; then
		log "no Django REST framework and gunicorn for $PY (Debian packages python3-djangorestframework, gunicorn; not root, so not installed): skipping forward_auth"
		drf=0
	fi
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tokenauth-bench.XXXXXX")
chmod 755 "$tmp" # the postgres OS user must reach $tmp/pg when we are root
pids=()
pgdir=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	if [ -n "$pgdir" ] && [ -f "$pgdir/data/PG_VERSION" ]; then
		scripts/pg-cluster.sh stop "$pgdir" 2>/dev/null || true
	fi
	if [ "${KEEP:-0}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { # url: until anything answers, at most 15s
	local i
	for i in $(seq 150); do
		curl -s -o /dev/null "$1" && return 0
		sleep 0.1
	done
	return 1
}

# --- build -----------------------------------------------------------------

log "building Caddy"
go build -o "$tmp/caddy" ./cmd/caddy
caddy=$tmp/caddy
export XDG_DATA_HOME=$tmp/data XDG_CONFIG_HOME=$tmp/config

# --- the SQLite db: Django's own, shared by token_auth and gunicorn --------

db=$tmp/db.sqlite3
password=bench-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
export PYTHONPATH="$ROOT/bench/django:$ROOT/integration/django${PYTHONPATH:+:$PYTHONPATH}"
export DJANGO_SETTINGS_MODULE=bench_auth.settings PYTHONDONTWRITEBYTECODE=1
manage() { TOKENAUTH_DJANGO_DB=$db "$PY" "$ROOT/integration/django/manage.py" "$@"; }
if have_drf; then
	log "making $db with Django (migrate, create_user, drf_create_token)"
	manage migrate -v 0
	manage shell -c "from django.contrib.auth import get_user_model; get_user_model().objects.create_user('bench', password='$password')"
	out=$(manage drf_create_token bench)
else
	log "making $db with caddy token (no Django)"
	"$caddy" token migrate --store "sqlite:$db" >/dev/null 2>>"$tmp/setup.log"
	out=$(printf '%s\n' "$password" | "$caddy" token adduser bench --password-stdin --store "sqlite:$db" 2>>"$tmp/setup.log")
fi
key=${out#Generated token }
key=${key%% *}
[[ $key =~ ^[0-9a-f]{40}$ ]] || die "no token from: $out"

# --- PostgreSQL ------------------------------------------------------------

pg=0
if out=$("${on_server[@]}" scripts/pg-cluster.sh start "$tmp/pg" 2>"$tmp/pg-cluster.log"); then
	pgdir=$tmp/pg
	eval "$out"
	"$caddy" token migrate --store "$TOKENAUTH_PG_DSN" >/dev/null 2>>"$tmp/setup.log"
	out=$(printf '%s\n' "$password" | "$caddy" token adduser bench --password-stdin --store "$TOKENAUTH_PG_DSN" 2>>"$tmp/setup.log")
	pgkey=${out#Generated token }
	pgkey=${pgkey%% *}
	[[ $pgkey =~ ^[0-9a-f]{40}$ ]] || die "no postgres token from: $out"
	pg=1
else
	pgdir=$tmp/pg
	log "no PostgreSQL cluster (see below): skipping pg-nocache"
	cat "$tmp/pg-cluster.log" >&2
fi

# --- gunicorn + DRF --------------------------------------------------------

gport=$(free_port)
if [ "$drf" = 1 ]; then
	log "starting gunicorn ($GUNICORN_WORKERS sync workers) on 127.0.0.1:$gport"
	TOKENAUTH_DJANGO_DB=$db "${on_server[@]}" "$PY" -m gunicorn \
		--bind "127.0.0.1:$gport" --workers "$GUNICORN_WORKERS" --worker-class sync \
		--graceful-timeout 2 --log-level warning --error-logfile "$tmp/gunicorn.log" \
		bench_auth.wsgi:application &
	pids+=($!)
	wait_http "http://127.0.0.1:$gport/auth/check/" || die "gunicorn did not start: $(cat "$tmp/gunicorn.log")"
fi

# --- Caddy -----------------------------------------------------------------

hash=$("$caddy" hash-password --plaintext "$password")
basic=$(printf 'bench:%s' "$password" | base64 -w0)

names=(respond cache-hit sqlite-nocache pg-nocache basic_auth forward_auth respond-header)
enabled=(1 1 1 "$pg" 1 "$drf" 1)
auths=("" "Token $key" "Token $key" "Token ${pgkey:-}" "Basic $basic" "Token $key" "Token $key")
ports=()
for _ in "${names[@]}"; do ports+=("$(free_port)"); done

caddyfile_global >"$tmp/Caddyfile"
cat >>"$tmp/Caddyfile" <<CADDYFILE

# respond: the baseline
http://:${ports[0]} {
	respond "ok"
}

# respond-header: the baseline, sent the same Authorization header as the
# token_auth setups, to tell Go's cost of parsing that header from the
# handler's
http://:${ports[6]} {
	respond "ok"
}

# cache-hit: token_auth, sqlite, cache on
http://:${ports[1]} {
	token_auth {
		store sqlite $db
	}
	respond "ok"
}

# sqlite-nocache
http://:${ports[2]} {
	token_auth {
		store sqlite $db
		cache off
	}
	respond "ok"
}
CADDYFILE
if [ "$pg" = 1 ]; then
	cat >>"$tmp/Caddyfile" <<CADDYFILE

# pg-nocache
http://:${ports[3]} {
	token_auth {
		store postgres "$TOKENAUTH_PG_DSN"
		cache off
	}
	respond "ok"
}
CADDYFILE
fi
cat >>"$tmp/Caddyfile" <<CADDYFILE

# basic_auth, bcrypt
http://:${ports[4]} {
	basic_auth {
		bench $hash
	}
	respond "ok"
}
CADDYFILE
if [ "$drf" = 1 ]; then
	cat >>"$tmp/Caddyfile" <<CADDYFILE

# forward_auth to DRF under gunicorn (caddy-modules.md §2.4)
http://:${ports[5]} {
	forward_auth 127.0.0.1:$gport {
		uri /auth/check/
		copy_headers X-User-Id X-Username
	}
	respond "ok"
}
CADDYFILE
fi

log "starting Caddy"
"${on_server[@]}" "$caddy" run --config "$tmp/Caddyfile" --adapter caddyfile >"$tmp/caddy.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:${ports[0]}/" || die "Caddy did not start: $(cat "$tmp/caddy.log")"

# Every auth site: 200 with its credentials, 401 without.
for i in "${!names[@]}"; do
	[ "${enabled[$i]}" = 1 ] || continue
	url="http://127.0.0.1:${ports[$i]}/"
	args=()
	[ -z "${auths[$i]}" ] || args=(-H "Authorization: ${auths[$i]}")
	code=$(curl -s -o /dev/null -w '%{http_code}' "${args[@]}" "$url")
	[ "$code" = 200 ] || die "${names[$i]}: $code with credentials, want 200: $(tail -5 "$tmp/caddy.log")"
	if [ -n "${auths[$i]}" ] && [ "${names[$i]}" != respond-header ]; then
		code=$(curl -s -o /dev/null -w '%{http_code}' "$url")
		[ "$code" = 401 ] || die "${names[$i]}: $code without credentials, want 401"
	fi
done

# --- load ------------------------------------------------------------------

run_wrk() { # index duration -> the BENCH line
	local i=$1 args=(-t"$THREADS" -c"$CONNS" -d"$2" -s "$ROOT/bench/report.lua")
	[ -z "${auths[$i]}" ] || args+=(-H "Authorization: ${auths[$i]}")
	"${on_client[@]}" "$WRK" "${args[@]}" "http://127.0.0.1:${ports[$i]}/" | grep '^BENCH '
}

log "pinning: $([ "$PIN" = 1 ] && echo 'wrk on CPU 0, servers on CPU 1' || echo none); wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS rounds"
for i in "${!names[@]}"; do
	[ "${enabled[$i]}" = 1 ] && run_wrk "$i" "$WARMUP" >/dev/null
done

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
results=$tmp/results.tsv
: >"$results"
n=${#names[@]}
for r in $(seq "$ROUNDS"); do
	# Each round starts one setup later, so none always runs first or last.
	for k in $(seq 0 $((n - 1))); do
		i=$(((k + r - 1) % n))
		[ "${enabled[$i]}" = 1 ] || continue
		line=$(run_wrk "$i" "$DURATION")
		log "round $r ${names[$i]}: ${line#BENCH }"
		printf '%s\t%s\t%s\n' "${names[$i]}" "$r" "${line#BENCH }" >>"$results"
	done
done

# --- report ----------------------------------------------------------------

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
goversion=$(go version)
caddyversion=$("$caddy" version)
gunicornversion=$([ "$drf" = 1 ] && "$PY" -c 'import django, rest_framework, gunicorn; print("Django %s, DRF %s, gunicorn %s" % (django.get_version(), rest_framework.VERSION, gunicorn.__version__))' || echo "not run")
pgversion=$([ "$pg" = 1 ] && "$(dirname "$(ls /usr/lib/postgresql/*/bin/postgres | tail -1)")/postgres" --version || echo "not run")

B_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') B_NPROC=$(nproc) B_CPU=$cpu B_GO=$goversion B_CADDY=$caddyversion \
	B_PG=$pgversion B_DRF=$gunicornversion B_WORKERS=$GUNICORN_WORKERS B_COMMAND=$command \
	B_LOADAVG="$load_before before the rounds, $load_after after" \
	B_LOAD="wrk -t$THREADS -c$CONNS -d$DURATION per run, $ROUNDS rounds, setups alternating; $([ "$PIN" = 1 ] && echo 'wrk pinned to CPU 0, Caddy/gunicorn/PostgreSQL to CPU 1 (taskset)' || echo 'no CPU pinning')" \
	"$PY" - "$results" "$ROOT/bench/results.md" <<'PY'
import os
import statistics, sys

rows = {}
for line in open(sys.argv[1]):
    name, rnd, fields = line.rstrip("\n").split("\t")
    kv = dict(f.split("=") for f in fields.split())
    kv["round"] = rnd
    rows.setdefault(name, []).append(kv)

order = ["respond", "respond-header", "cache-hit", "sqlite-nocache", "pg-nocache", "basic_auth", "forward_auth"]
what = {
    "respond": "plain respond, no auth",
    "respond-header": "plain respond, sent the Authorization header",
    "cache-hit": "token_auth, sqlite, cache hit",
    "sqlite-nocache": "token_auth, sqlite, cache off",
    "pg-nocache": "token_auth, postgres, cache off",
    "basic_auth": "basic_auth (bcrypt, cached)",
    "forward_auth": "forward_auth → DRF/gunicorn",
}
med = {}
for name in order:
    if name in rows:
        rs = rows[name]
        med[name] = (
            statistics.median(float(r["rps"]) for r in rs),
            statistics.median(int(r["p99_us"]) for r in rs),
            min(float(r["rps"]) for r in rs),
            max(float(r["rps"]) for r in rs),
            sum(int(r["non2xx"]) + int(r["errors"]) for r in rs),
        )
base = med["respond"][0]
base_by_round = {r["round"]: float(r["rps"]) for r in rows["respond"]}


def paired(name):
    """Median over rounds of this setup's req/s over respond's in that round."""
    return statistics.median(
        float(r["rps"]) / base_by_round[r["round"]] for r in rows[name] if r["round"] in base_by_round
    )


hit = med.get("cache-hit", (0,))[0]

head = ["setup", "req/s (median)", "min–max req/s", "p99 (median)", "× respond", "× respond, paired", "cache-hit ÷ this", "bad responses"]
table = []
for name in order:
    if name not in med:
        continue
    rps, p99, lo, hi, bad = med[name]
    slower = "%.1f×" % (hit / rps) if name in ("forward_auth", "pg-nocache", "sqlite-nocache", "basic_auth") else ""
    table.append([
        "%s — %s" % (name, what[name]), "%.0f" % rps, "%.0f–%.0f" % (lo, hi),
        "%.2f ms" % (p99 / 1000), "%.3f" % (rps / base), "%.3f" % paired(name), slower, str(bad),
    ])

# The terminal table.
widths = [max(len(r[c]) for r in [head] + table) for c in range(len(head))]
for r in [head] + table:
    print("  ".join(v.ljust(widths[c]) for c, v in enumerate(r)).rstrip())

targets = []
if "cache-hit" in med:
    ok = hit / base >= 0.97
    targets.append("- cache hit ≥ 0.97 × respond: **%s** (%.3f; paired by round %.3f)" % ("met" if ok else "not met", hit / base, paired("cache-hit")))
if "cache-hit" in med and "respond-header" in med:
    targets.append("- cache hit ÷ respond sent the same header (the handler's own cost): %.3f" % (hit / med["respond-header"][0]))
if "forward_auth" in med:
    x = hit / med["forward_auth"][0]
    targets.append("- forward_auth ≥ 30× slower than cache hit: **%s** (%.1f×)" % ("met" if x >= 30 else "not met", x))
print()
print("\n".join(t.replace("**", "") for t in targets))

md = []
md.append("# token_auth benchmark results\n")
e = os.environ
md.append("Written by `bench/run.sh`; see bench/README.md for what each setup is and how to read it.\n")
md.append("- Date: " + e["B_DATE"])
md.append("- Machine: %s CPUs, %s" % (e["B_NPROC"], e["B_CPU"]))
md.append("- Go: " + e["B_GO"])
md.append("- Caddy: " + e["B_CADDY"])
md.append("- PostgreSQL: " + e["B_PG"])
md.append("- forward_auth backend: %s, %s sync workers" % (e["B_DRF"], e["B_WORKERS"]))
md.append("- Load: " + e["B_LOAD"])
md.append("- Load average (1, 5, 15 min): " + e["B_LOADAVG"])
md.append("- Command: `%s`\n" % e["B_COMMAND"])
md.append("| " + " | ".join(head) + " |")
md.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
for r in table:
    md.append("| " + " | ".join(r) + " |")
md.append("")
md.append("Targets:\n")
md.extend(targets)
md.append("")
md.append("Every run, setup by setup (req/s, p99 µs):\n")
for name in order:
    if name in rows:
        md.append("- %s: %s" % (name, ", ".join("%s / %s" % (r["rps"], r["p99_us"]) for r in rows[name])))
open(sys.argv[2], "w").write("\n".join(md) + "\n")
PY
log "wrote bench/results.md"
