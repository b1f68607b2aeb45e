#!/usr/bin/env bash
# pg-cluster.sh — a throwaway PostgreSQL cluster for the store/postgres tests.
#
#   eval "$(scripts/pg-cluster.sh start <dir>)"   # initdb (first time) and start
#   scripts/pg-cluster.sh stop <dir>              # pg_ctl stop -m fast
#
# start prints, on stdout and nothing else:
#   export TOKENAUTH_PG_DSN=postgres://postgres@127.0.0.1:<port>/tokenauth?sslmode=disable
#   export TOKENAUTH_PG_DATA=<dir>/data
#
# The cluster listens on 127.0.0.1 only, on a free port, with trust
# authentication, and keeps its Unix socket in <dir>/run. Port and socket are
# written into <dir>/data/postgresql.conf, so a plain
#   pg_ctl -D <dir>/data -w start -l <dir>/postgres.log
# restarts it as it was. Run as root, the server runs as the postgres OS user
# (initdb and postgres refuse root). Installing PostgreSQL is not this
# script's job: without it, it says so and exits 1.
set -euo pipefail

usage() {
	echo "usage: $0 start|stop <dir>" >&2
	exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2
case $cmd in start | stop) ;; *) usage ;; esac

# The newest installed PostgreSQL, else whatever is on PATH.
bindir=""
for d in /usr/lib/postgresql/*/bin; do
	[ -x "$d/pg_ctl" ] && bindir=$d
done
if [ -z "$bindir" ] && command -v pg_ctl >/dev/null 2>&1; then
	bindir=$(dirname "$(command -v pg_ctl)")
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
	echo "pg-cluster.sh: PostgreSQL is not installed (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on PATH)" >&2
	exit 1
fi

# as_pg runs a command as the postgres OS user when we are root.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data=$dir/data
log=$dir/postgres.log

free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
		return
	fi
	local p
	for p in $(seq 54320 54420); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "pg-cluster.sh: no free port in 54320-54420" >&2
	exit 1
}

case $cmd in
stop)
	if [ ! -f "$data/PG_VERSION" ]; then
		echo "pg-cluster.sh: no cluster in $data" >&2
		exit 1
	fi
	if as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		as_pg "$bindir/pg_ctl" -D "$data" stop -m fast >&2
	else
		echo "pg-cluster.sh: cluster in $data is not running" >&2
	fi
	;;
start)
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$dir"
	fi
	if [ ! -f "$data/PG_VERSION" ]; then
		port=$(free_port)
		as_pg mkdir -p "$dir/run"
		as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C >&2
		as_pg tee -a "$data/postgresql.conf" >/dev/null <<-CONF

			# pg-cluster.sh: a throwaway test cluster
			listen_addresses = '127.0.0.1'
			port = $port
			unix_socket_directories = '$dir/run'
			fsync = off
			synchronous_commit = off
			full_page_writes = off
		CONF
	fi
	port=$(sed -n 's/^port = \([0-9]*\).*/\1/p' "$data/postgresql.conf" | tail -1)
	if ! as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		as_pg "$bindir/pg_ctl" -D "$data" -w -l "$log" start >&2
	fi
	if ! as_pg "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = 'tokenauth'" | grep -q 1; then
		as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres tokenauth
	fi
	echo "export TOKENAUTH_PG_DSN=postgres://postgres@127.0.0.1:$port/tokenauth?sslmode=disable"
	echo "export TOKENAUTH_PG_DATA=$data"
	;;
esac
