"""Settings of a minimal DRF project with token authentication (Django 3.2–5.2).

The database comes from the environment:
  DATABASE_URL=postgres://user:pass@host:port/name?sslmode=…  (psycopg2)
  TOKENAUTH_DJANGO_DB=/path/to/db.sqlite3
  (neither)  db.sqlite3 next to manage.py
"""
import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "token-auth-compatibility-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework.authtoken",
]
MIDDLEWARE = []
ROOT_URLCONF = "tokenauth_site.urls"
WSGI_APPLICATION = None

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
    ],
    # JSON only: no templates needed, and errors are always DRF's JSON.
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
    ],
}


def database_from_url(url):
    """Django DATABASES entry for postgres://user:pass@host:port/name?opts."""
    u = urlsplit(url)
    if u.scheme not in ("postgres", "postgresql"):
        raise ValueError("DATABASE_URL: want postgres://…, got scheme %r" % u.scheme)
    options = dict(parse_qsl(u.query))
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(u.path.lstrip("/")),
        "USER": unquote(u.username or ""),
        "PASSWORD": unquote(u.password or ""),
        "HOST": options.pop("host", unquote(u.hostname or "")),
        "PORT": str(u.port or ""),
        "OPTIONS": options,
    }


if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": database_from_url(os.environ["DATABASE_URL"])}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("TOKENAUTH_DJANGO_DB", str(BASE_DIR / "db.sqlite3")),
        }
    }
