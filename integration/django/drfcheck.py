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
  login         {"requests": [{"method", "path", "content_type" (null: no
                 Content-Type), "body" (base64), "headers": {name: value}}]}
                -> [{"status", "body" (base64), "content_type", "allow",
                     "www_authenticate", "retry_after", "vary"}]
                   Raw requests through DRF's APIClient, by default POST
                   /api-token-auth/ (obtain_auth_token); the WSGI environ
                   has CONTENT_TYPE only when content_type is given and
                   CONTENT_LENGTH only for a non-empty body, as gunicorn
                   builds it. /api-token-auth-throttled/ is the same view
                   with DRF's AnonRateThrottle at 3/min; the throttle's
                   cache lives as long as this one command.
  makeusers     {"users": [{"username", "password", "hasher", "iterations",
                 "active", "token"}]}
                -> [{"username", "id", "encoded", "token"}]
                   Each password encoded by Django's hasher of that
                   algorithm name (PASSWORD_HASHERS set to that hasher
                   alone while it is made; "iterations" for the PBKDF2
                   hashers; "unusable" for set_unusable_password()); a
                   token made with get_or_create when "token" is true.
  checkpassword {"checks": [{"username", "password"}]}
                -> [{"ok": bool, "encoded": str}]
                   django.contrib.auth.hashers.check_password on the stored
                   value, every hasher of this Django installed, nothing
                   written back.
  tokenof       {"usernames": [str]} -> {username: key|null}
  setupperms    {"perms": ["<app_label>.<codename>"],
                 "groups": {name: ["<app_label>.<codename>"]},
                 "users": [{"username", "active", "staff", "superuser",
                            "groups": [name], "perms": [...]}]}
                -> [{"username", "id", "token"}]
                   Through the ORM as a project does it: each permission
                   (and its content type) made with get_or_create, each
                   group with its permissions, each user with create_user,
                   then user.groups.add and user.user_permissions.add, and a
                   token made with get_or_create.
  permissions   {"requests": [{"method", "path", "authorization" (null: no
                 header)}]}
                -> [{"status", "body" (base64), "www_authenticate",
                     "content_type"}]
                   Through DRF's APIClient, to the views of
                   tokenauth_site/urls.py under /perm/, each with its
                   permission classes.

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
from django.contrib.auth import hashers  # noqa: E402
from django.test.client import FakePayload  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

# Every hasher this Django has, by algorithm name.
ALL_HASHERS = {
    cls.algorithm: "django.contrib.auth.hashers." + cls.__name__
    for cls in vars(hashers).values()
    if isinstance(cls, type)
    and issubclass(cls, hashers.BasePasswordHasher)
    and getattr(cls, "algorithm", None)
}


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


def login(req):
    client = APIClient()
    out = []
    for r in req["requests"]:
        body = base64.b64decode(r.get("body") or "")
        environ = {
            "PATH_INFO": r.get("path", "/api-token-auth/"),
            "REQUEST_METHOD": r.get("method", "POST"),
            "QUERY_STRING": "",
            "wsgi.input": FakePayload(body),
        }
        if body:
            environ["CONTENT_LENGTH"] = str(len(body))
        if r.get("content_type") is not None:
            environ["CONTENT_TYPE"] = r["content_type"]
        for name, value in (r.get("headers") or {}).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        resp = client.request(**environ)
        out.append(
            {
                "status": resp.status_code,
                "body": base64.b64encode(resp.content).decode("ascii"),
                "content_type": resp.get("Content-Type"),
                "allow": resp.get("Allow"),
                "www_authenticate": resp.get("WWW-Authenticate"),
                "retry_after": resp.get("Retry-After"),
                "vary": resp.get("Vary"),
            }
        )
    return out


def makeusers(req):
    User = get_user_model()
    out = []
    for u in req["users"]:
        algorithm = u.get("hasher", "pbkdf2_sha256")
        if algorithm == "unusable":
            encoded = hashers.make_password(None)
        else:
            with override_settings(PASSWORD_HASHERS=[ALL_HASHERS[algorithm]]):
                hasher = hashers.get_hasher(algorithm)
                if u.get("iterations"):
                    encoded = hasher.encode(u["password"], hasher.salt(), int(u["iterations"]))
                else:
                    encoded = hashers.make_password(u["password"], hasher=algorithm)
        user = User.objects.create_user(username=u["username"], is_active=u.get("active", True))
        user.password = encoded
        user.save(update_fields=["password"])
        key = Token.objects.get_or_create(user=user)[0].key if u.get("token") else None
        out.append({"username": user.username, "id": user.pk, "encoded": encoded, "token": key})
    return out


def checkpassword(req):
    User = get_user_model()
    out = []
    with override_settings(PASSWORD_HASHERS=list(ALL_HASHERS.values())):
        for c in req["checks"]:
            encoded = User.objects.get(username=c["username"]).password
            out.append({"ok": hashers.check_password(c["password"], encoded), "encoded": encoded})
    return out


def tokenof(req):
    keys = {}
    for name in req["usernames"]:
        token = Token.objects.filter(user__username=name).first()
        keys[name] = token.key if token else None
    return keys


def _permission(name):
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    app_label, codename = name.split(".", 1)
    ct, _ = ContentType.objects.get_or_create(app_label=app_label, model=codename.split("_", 1)[-1])
    perm, _ = Permission.objects.get_or_create(
        content_type=ct, codename=codename, defaults={"name": "Can " + codename.replace("_", " ")}
    )
    return perm


def setupperms(req):
    from django.contrib.auth.models import Group

    User = get_user_model()
    for name in req.get("perms", []):
        _permission(name)
    for name, perms in req.get("groups", {}).items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*[_permission(p) for p in perms or []])
    out = []
    for u in req["users"]:
        user = User.objects.create_user(
            username=u["username"],
            password="unused-" + u["username"],
            is_active=u.get("active", True),
            is_staff=u.get("staff", False),
            is_superuser=u.get("superuser", False),
        )
        if u.get("groups"):
            user.groups.add(*[Group.objects.get(name=g) for g in u["groups"]])
        if u.get("perms"):
            user.user_permissions.add(*[_permission(p) for p in u["perms"]])
        token = Token.objects.get_or_create(user=user)[0].key
        out.append({"username": user.username, "id": user.pk, "token": token})
    return out


def permissions(req):
    client = APIClient()
    out = []
    for r in req["requests"]:
        extra = {}
        if r.get("authorization") is not None:
            extra["HTTP_AUTHORIZATION"] = r["authorization"]
        resp = client.generic(r["method"], r["path"], **extra)
        out.append(
            {
                "status": resp.status_code,
                "body": base64.b64encode(resp.content).decode("ascii"),
                "www_authenticate": resp.get("WWW-Authenticate"),
                "content_type": resp.get("Content-Type"),
            }
        )
    return out


COMMANDS = {
    "createusers": createusers,
    "authenticate": check_password,
    "requests": requests,
    "login": login,
    "makeusers": makeusers,
    "checkpassword": checkpassword,
    "tokenof": tokenof,
    "setupperms": setupperms,
    "permissions": permissions,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit("usage: drfcheck.py {%s} < request.json" % ",".join(COMMANDS))
    json.dump(COMMANDS[sys.argv[1]](json.load(sys.stdin)), sys.stdout)
    sys.stdout.write("\n")
