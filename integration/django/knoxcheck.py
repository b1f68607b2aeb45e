#!/usr/bin/env python3
"""Asks the real django-rest-knox what it makes of tokens, logins and headers.

Usage: knoxcheck.py <command>, one JSON document on stdin, one on stdout.
knox must be importable: KNOX_SRC (a django-rest-knox checkout, the
directory holding knox/) is put first on sys.path when set. The project is
knox_site (see its settings and urls); the database is the one
tokenauth_site.settings names (TOKENAUTH_DJANGO_DB or DATABASE_URL).

Every command may carry "knox": knox's settings for that command, by knox's
names, durations in seconds (null for None):
  {"TOKEN_TTL": 36000, "TOKEN_LIMIT_PER_USER": null, "AUTO_REFRESH": false,
   "AUTO_REFRESH_MAX_TTL": null, "MIN_REFRESH_INTERVAL": 60,
   "TOKEN_PREFIX": ""}
They are applied with override_settings(REST_KNOX=…), and, because knox's
modules bind knox_settings at import (its setting_changed handler rebinds
only knox.settings'), also rebound in knox.auth, knox.views and knox.models;
the command then checks that knox.auth and knox.views see them.

  migrate       {} -> {"migrated": true}   (manage.py migrate, knox_site)
  createusers   {"users": [{"username", "password" (absent: an unusable
                 one, nothing hashed), "active"}]}
                -> [{"username", "id"}]
  createtokens  {"tokens": [{"username", "ttl" (seconds, null: none; absent:
                 TOKEN_TTL), "prefix" (absent: TOKEN_PREFIX), "created",
                 "expiry" (ISO 8601, optional: written after the create)}]}
                -> [{"token", "user", "token_key", "digest", "created", "expiry"}]
                   knox's own AuthToken.objects.create(user, expiry=…,
                   prefix=…).
  requests      {"requests": [{"method" (POST), "path", "content_type" (null:
                 no Content-Type), "body" (base64), "authorization":
                 ["<base64 of one raw Authorization value>", …], "headers":
                 {name: value}}]}
                -> [{"status", "body" (base64), "content_type", "allow",
                     "www_authenticate", "vary", "set_cookie" (the names of
                     the cookies set, sorted), "view", "started",
                     "finished"}]
                   Raw requests through DRF's APIClient, each with fresh
                   cookies, 500s answered rather than raised. The WSGI
                   environ is gunicorn's: CONTENT_TYPE only when given,
                   CONTENT_LENGTH only for a non-empty body, Authorization
                   values decoded as latin-1, stripped of spaces and tabs
                   and joined with ",". /api/auth/login/ is routed as
                   Caddy's one login path: an Authorization whose first
                   word is "basic" (DRF's BasicAuthentication's test) goes
                   to the Basic LoginView, else a non-empty body to the
                   recipe view, else to the Basic LoginView. "started" and
                   "finished" are the UTC instants around the request (ISO
                   8601), for expiries computed from now.
  state         {} -> {"tokens": [{"digest", "token_key", "user", "created",
                 "expiry"}] (by created, then digest), "users": {username:
                 {"id", "is_active", "last_login"}}}   datetimes ISO 8601 UTC
"""
import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if os.environ.get("KNOX_SRC"):
    sys.path.insert(0, os.environ["KNOX_SRC"])
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "knox_site.settings")

import django  # noqa: E402

django.setup()

from datetime import datetime, timedelta, timezone as dt_timezone  # noqa: E402

import knox.auth  # noqa: E402
import knox.models  # noqa: E402
import knox.settings  # noqa: E402
import knox.views  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test.client import FakePayload  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.utils.dateparse import parse_datetime  # noqa: E402
from knox.models import AuthToken  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

LOGIN_PATH = "/api/auth/login/"
BASIC_PATH = "/api/auth/login/basic/"
RECIPE_PATH = "/api/auth/login/recipe/"

DURATIONS = ("TOKEN_TTL", "AUTO_REFRESH_MAX_TTL")


def knox_settings_of(req):
    """REST_KNOX for the command's "knox" object."""
    out = {}
    for name, value in (req.get("knox") or {}).items():
        if name in DURATIONS and value is not None:
            value = timedelta(seconds=value)
        out[name] = value
    return out


class KnoxSettings:
    """override_settings(REST_KNOX=…) that reaches every knox module."""

    MODULES = (knox.auth, knox.views, knox.models)

    def __init__(self, rest_knox):
        self.rest_knox = rest_knox
        self.override = override_settings(REST_KNOX=rest_knox)

    def __enter__(self):
        self.saved = [m.knox_settings for m in self.MODULES]
        self.override.enable()
        for m in self.MODULES:
            m.knox_settings = knox.settings.knox_settings
        for name, value in self.rest_knox.items():
            for m in (knox.auth, knox.views):
                got = getattr(m.knox_settings, name)
                if got != value:
                    raise SystemExit("knox setting %s: %s sees %r, want %r" % (name, m.__name__, got, value))
        return self

    def __exit__(self, *exc):
        self.override.disable()
        for m, s in zip(self.MODULES, self.saved):
            m.knox_settings = s
        return False


def iso(dt):
    return None if dt is None else dt.astimezone(dt_timezone.utc).isoformat()


def now_iso():
    return datetime.now(dt_timezone.utc).isoformat()


def migrate(req):
    call_command("migrate", interactive=False, verbosity=0)
    return {"migrated": True}


def createusers(req):
    User = get_user_model()
    out = []
    for u in req["users"]:
        user = User.objects.create_user(
            username=u["username"], password=u.get("password"), is_active=u.get("active", True)
        )
        out.append({"username": user.username, "id": user.pk})
    return out


def createtokens(req):
    User = get_user_model()
    s = knox.settings.knox_settings
    out = []
    for t in req["tokens"]:
        user = User.objects.get(username=t["username"])
        if "ttl" in t:
            ttl = None if t["ttl"] is None else timedelta(seconds=t["ttl"])
        else:
            ttl = s.TOKEN_TTL
        instance, token = AuthToken.objects.create(user, expiry=ttl, prefix=t.get("prefix", s.TOKEN_PREFIX))
        fields = {}
        for name in ("created", "expiry"):
            if name in t:
                fields[name] = None if t[name] is None else parse_datetime(t[name])
        if fields:
            AuthToken.objects.filter(digest=instance.digest).update(**fields)
            instance.refresh_from_db()
        out.append(
            {
                "token": token,
                "user": user.username,
                "token_key": instance.token_key,
                "digest": instance.digest,
                "created": iso(instance.created),
                "expiry": iso(instance.expiry),
            }
        )
    return out


def authorization_of(r):
    """The HTTP_AUTHORIZATION a WSGI server (gunicorn) would build, or None."""
    values = r.get("authorization") or []
    if not values:
        return None
    return ",".join(base64.b64decode(v).decode("latin-1").strip(" \t") for v in values)


def route(path, authorization, body):
    """The knox view Caddy's one login path stands for."""
    if path != LOGIN_PATH:
        return path, None
    words = (authorization or "").encode("latin-1").split()
    if words and words[0].lower() == b"basic":
        return BASIC_PATH, "basic"
    if body:
        return RECIPE_PATH, "recipe"
    return BASIC_PATH, "basic"


def requests(req):
    out = []
    for r in req["requests"]:
        body = base64.b64decode(r.get("body") or "")
        authorization = authorization_of(r)
        path, view = route(r["path"], authorization, body)
        environ = {
            "PATH_INFO": path,
            "REQUEST_METHOD": r.get("method") or "POST",
            "QUERY_STRING": "",
            "wsgi.input": FakePayload(body),
        }
        if body:
            environ["CONTENT_LENGTH"] = str(len(body))
        if r.get("content_type") is not None:
            environ["CONTENT_TYPE"] = r["content_type"]
        if authorization is not None:
            environ["HTTP_AUTHORIZATION"] = authorization
        for name, value in (r.get("headers") or {}).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        client = APIClient(raise_request_exception=False)
        started = now_iso()
        resp = client.request(**environ)
        finished = now_iso()
        out.append(
            {
                "status": resp.status_code,
                "body": base64.b64encode(resp.content).decode("ascii"),
                "content_type": resp.get("Content-Type"),
                "allow": resp.get("Allow"),
                "www_authenticate": resp.get("WWW-Authenticate"),
                "vary": resp.get("Vary"),
                "set_cookie": sorted(resp.cookies.keys()),
                "view": view,
                "started": started,
                "finished": finished,
            }
        )
    return out


def state(req):
    User = get_user_model()
    tokens = [
        {
            "digest": t.digest,
            "token_key": t.token_key,
            "user": t.user.username,
            "created": iso(t.created),
            "expiry": iso(t.expiry),
        }
        for t in AuthToken.objects.select_related("user").order_by("created", "digest")
    ]
    users = {
        u.username: {"id": u.pk, "is_active": u.is_active, "last_login": iso(u.last_login)}
        for u in User.objects.order_by("pk")
    }
    return {"tokens": tokens, "users": users}


COMMANDS = {
    "migrate": migrate,
    "createusers": createusers,
    "createtokens": createtokens,
    "requests": requests,
    "state": state,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit("usage: knoxcheck.py {%s} < request.json" % ",".join(COMMANDS))
    request = json.load(sys.stdin)
    with KnoxSettings(knox_settings_of(request)):
        result = COMMANDS[sys.argv[1]](request)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
