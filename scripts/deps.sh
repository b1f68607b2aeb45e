#!/usr/bin/env bash
# Installs what the tests need from Debian's packages when it is missing:
# PostgreSQL (a throwaway cluster per run) and Django with Django REST
# Framework for /usr/bin/python3 (the compatibility tests; django-rest-knox
# is vendored in integration/django/third_party and imports nothing beyond
# Django, DRF and the standard library). Needs root for
# apt-get; without root it says what is missing. Under CI=true anything
# missing after this fails the run.
set -euo pipefail

missing=()
py_has() { /usr/bin/python3 -c "import $1" >/dev/null 2>&1; }
[ -x /usr/bin/python3 ] && py_has django || missing+=(python3-django)
[ -x /usr/bin/python3 ] && py_has rest_framework || missing+=(python3-djangorestframework)
[ -x /usr/bin/python3 ] && py_has psycopg2 || missing+=(python3-psycopg2)
[ -x /usr/bin/python3 ] && py_has argon2 || missing+=(python3-argon2)
[ -x /usr/bin/python3 ] && py_has bcrypt || missing+=(python3-bcrypt)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends python3 "${missing[@]}" >/dev/null
elif [ "${CI:-}" = "true" ]; then
	echo "deps: missing ${missing[*]} and not root: cannot install under CI" >&2
	exit 1
else
	echo "deps: not root; install them with: sudo apt-get install ${missing[*]} (tests that need them will skip)" >&2
fi
