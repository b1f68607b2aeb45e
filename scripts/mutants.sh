#!/usr/bin/env bash
# mutants.sh (make mutants): one deliberate bug at a time, each in a fresh
# copy of the work tree, followed by the tests that should catch it (without
# -race, bounded in time). Prints one line per mutant, "killed by TestX" or
# "SURVIVED", and ends with "N passed, M failed": a survivor is a failure,
# and so is a mutant whose text no longer appears in its file exactly once
# (code moved: update scripts/mutants/) or that does not compile.
#
#   bash scripts/mutants.sh            # every mutant
#   bash scripts/mutants.sh cache      # those whose name contains "cache"
#
# The mutants are in scripts/mutants/*.txt, one file per area. Not run by CI. Mutants of the
# postgres store start a throwaway cluster (scripts/pg-cluster.sh); those
# of the integration package need Django (scripts/deps.sh) and take the
# test lock, as make test does.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
filter=${1:-}
work=$(mktemp -d /tmp/tokenauth-mutants.XXXXXX)
pgdir=""
cleanup() {
	[ -n "$pgdir" ] && bash "$root/scripts/pg-cluster.sh" stop "$pgdir" >/dev/null 2>&1 || true
	[ -n "$pgdir" ] && rm -rf "$pgdir"
	rm -rf "$work"
}
trap cleanup EXIT

# The work tree as it is, committed or not (untracked files included,
# ignored ones not).
mkdir "$work/pristine"
git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$work/pristine"

# Parsed by mutate.py: records separated by lines of "---"; fields
# "name:", "file:", "package:", "tests:", "old:", "new:" (old and new may
# span several lines, up to the next field).
python3 - "$root/scripts/mutants" "$filter" >"$work/list" <<'PY'
import glob, json, sys
folder, filt = sys.argv[1], sys.argv[2]
recs, cur, key = [], {}, None
lines = []
for path in sorted(glob.glob(folder + "/*.txt")):
    lines += open(path, encoding="utf-8").read().split("\n") + ["---"]
for line in lines:
    line = line.rstrip("\n")
    if line.startswith("#") and key not in ("old", "new"):
        continue
    if line == "---":
        if cur: recs.append(cur)
        cur, key = {}, None
        continue
    head, sep, rest = line.partition(":")
    if sep and head in ("name", "file", "package", "tests", "old", "new") and (key not in ("old", "new") or head in ("new", "name")):
        key = head
        cur[key] = rest[1:] if rest.startswith(" ") else rest
        continue
    if key in ("old", "new"):
        cur[key] += "\n" + line
    elif line.strip():
        sys.exit(f"scripts/mutants: stray line {line!r}")
if cur: recs.append(cur)
for r in recs:
    missing = {"name", "file", "package", "tests", "old", "new"} - r.keys()
    if missing:
        sys.exit(f"scripts/mutants: {r.get('name', '?')}: missing {sorted(missing)}")
    if filt in r["name"]:
        print(json.dumps(r))
PY

passed=0 failed=0
while IFS= read -r rec; do
	name=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["name"])' "$rec")
	pkg=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["package"])' "$rec")
	tests=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tests"])' "$rec")
	tree="$work/tree"
	rm -rf "$tree"
	cp -a "$work/pristine" "$tree"
	if ! why=$(python3 - "$tree" "$rec" <<'PY'
import json, sys
tree, r = sys.argv[1], json.loads(sys.argv[2])
p = f"{tree}/{r['file']}"
try:
    s = open(p, encoding="utf-8").read()
except OSError as e:
    sys.exit(f"no file {r['file']}")
n = s.count(r["old"])
if n != 1:
    sys.exit(f"its text appears {n} times in {r['file']}, want once")
open(p, "w", encoding="utf-8").write(s.replace(r["old"], r["new"]))
PY
	); then
		echo "$name: ERROR, does not apply: $why"
		failed=$((failed + 1))
		continue
	fi
	if [ "$pkg" = ./store/postgres ] || [ "$pkg" = ./integration ]; then
		if [ -z "$pgdir" ]; then
			pgdir=$(mktemp -d /tmp/tokenauth-mutants-pg.XXXXXX)
			eval "$(bash "$root/scripts/pg-cluster.sh" start "$pgdir" 2>"$work/pg.log")"
		fi
	fi
	if ! (cd "$tree" && go vet "$pkg" >"$work/vet.log" 2>&1); then
		echo "$name: ERROR, does not compile: $(grep -m1 -v '^#' "$work/vet.log")"
		failed=$((failed + 1))
		continue
	fi
	lock=()
	[ "$pkg" = ./integration ] && lock=(flock /tmp/caddy-tokenauth-test.lock)
	if (cd "$tree" && "${lock[@]}" go test -count=1 -timeout 600s -run "$tests" "$pkg" >"$work/test.log" 2>&1); then
		echo "$name: SURVIVED ($pkg -run '$tests')"
		failed=$((failed + 1))
	else
		killer=$(grep -m1 -oE -- '--- FAIL: [^ ]+' "$work/test.log" | sed 's/--- FAIL: //')
		if [ -z "$killer" ]; then
			echo "$name: ERROR, the tests failed without a failing test: $(tail -n 3 "$work/test.log" | tr '\n' ' ')"
			failed=$((failed + 1))
		else
			echo "$name: killed by $killer"
			passed=$((passed + 1))
		fi
	fi
done <"$work/list"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
