"""Settings of a minimal DRF project with django-rest-knox (Django 3.2–5.2).

The database comes from the environment, as tokenauth_site.settings reads it
(DATABASE_URL, TOKENAUTH_DJANGO_DB). knox itself must be importable: put
django-rest-knox on PYTHONPATH (knoxcheck.py adds KNOX_SRC).

Sessions are installed because knox's documented username/password recipe
calls django.contrib.auth.login(), which needs request.session. REST_KNOX
holds knox's defaults here; knoxcheck.py sets each command's own.
"""
from tokenauth_site.settings import (  # noqa: F401
    ALLOWED_HOSTS,
    BASE_DIR,
    DATABASES,
    DEBUG,
    DEFAULT_AUTO_FIELD,
    LANGUAGE_CODE,
    SECRET_KEY,
    TIME_ZONE,
    USE_TZ,
)

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "rest_framework",
    "knox",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
]
ROOT_URLCONF = "knox_site.urls"
WSGI_APPLICATION = None

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
    ],
}

REST_KNOX = {}
