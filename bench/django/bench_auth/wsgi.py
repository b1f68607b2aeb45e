"""WSGI entry point for gunicorn: bench_auth.wsgi:application."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_auth.settings")

application = get_wsgi_application()
