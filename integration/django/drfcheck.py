#!/usr/bin/env python3
"""Asks the real Django/DRF what it makes of users, passwords and headers.

Usage: drfcheck.py <command>, one JSON document on stdin, one on stdout.

  createusers   {"users": [{"username", "password", "active"}]}
                -> [{"username", "id"}]
  authenticate  {"username", "password"}
                -> {"ok": bool, "id": int|null}
                   (django.contrib.auth.authenticate)
  requests      {"requests": [["<base64 of one raw Authorization value>", …], …]}
                -> [{"status", "body" (base64), "www_authenticate", "content_type"}]
                   GET /whoami/ through DRF's APIClient. Each request lists
                   the raw values of its Authorization header lines ([] =
                   no header). They reach Django as a WSGI server delivers
                   them: bytes decoded as latin-1, spaces and tabs stripped
                   from each end of each value, several values joined with
                   "," (gunicorn's wsgi.create()).

The database is the one tokenauth_site.settings names (TOKENAUTH_DJANGO_DB or
DATABASE_URL).
"""
import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenauth_site.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import authenticate, get_user_model  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402


def createusers(req):
    User = get_user_model()
    out = []
    for u in req["users"]:
        user = User.objects.create_user(
            username=u["username"], password=u["password"], is_active=u.get("active", True)
        )
        out.append({"username": user.username, "id": user.pk})
    return out


def check_password(req):
    user = authenticate(username=req["username"], password=req["password"])
    return {"ok": user is not None, "id": user.pk if user is not None else None}


def requests(req):
    client = APIClient()
    out = []
    for values in req["requests"]:
        extra = {}
        if values:
            raw = [base64.b64decode(v).decode("latin-1").strip(" \t") for v in values]
            extra["HTTP_AUTHORIZATION"] = ",".join(raw)
        resp = client.get("/whoami/", **extra)
        out.append(
            {
                "status": resp.status_code,
                "body": base64.b64encode(resp.content).decode("ascii"),
                "www_authenticate": resp.get("WWW-Authenticate"),
                "content_type": resp.get("Content-Type"),
            }
        )
    return out


COMMANDS = {"createusers": createusers, "authenticate": check_password, "requests": requests}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit("usage: drfcheck.py {%s} < request.json" % ",".join(COMMANDS))
    json.dump(COMMANDS[sys.argv[1]](json.load(sys.stdin)), sys.stdout)
    sys.stdout.write("\n")
