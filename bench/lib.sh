# bench/lib.sh — helpers shared by run.sh and instructions.sh; sourced, not run.

PY=/usr/bin/python3

log() { echo "bench: $*" >&2; }
die() {
	log "$*"
	exit 1
}

root=0
[ "$(id -u)" -eq 0 ] && root=1

apt_install() {
	log "installing $* with apt-get"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
		{ apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
}

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# caddyfile_global prints the global options every benchmark Caddy runs with:
# loopback only, no admin endpoint, no HTTPS, warnings only in the log.
caddyfile_global() {
	cat <<'CADDYFILE'
{
	admin off
	auto_https off
	default_bind 127.0.0.1
	grace_period 1s
	log {
		level WARN
	}
}
CADDYFILE
}
