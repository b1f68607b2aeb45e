"""Settings for the forward_auth setup of bench/run.sh.

The integration project's settings (database from TOKENAUTH_DJANGO_DB or
DATABASE_URL, TokenAuthentication + IsAuthenticated, JSON only, no
middleware), with this package's URLs: bench/run.sh puts both
integration/django and bench/django on PYTHONPATH.
"""
from tokenauth_site.settings import *  # noqa: F401,F403

ROOT_URLCONF = "bench_auth.urls"
WSGI_APPLICATION = "bench_auth.wsgi.application"
