"""Test settings: the production settings with test-friendly defaults.

Real services are used when the environment names them (CI exports DATABASE_URL and REDIS_URL);
otherwise SQLite and an in-memory broker, so `pytest` runs anywhere.
"""

import os
import tempfile
from urllib.parse import urlsplit, urlunsplit

os.environ["PORTAL_READ_DOT_ENV"] = "false"


def _redis_database_of_this_worker(url: str, worker: str) -> str:
    """`make test` runs the suite in parallel (pytest-xdist: workers gw0, gw1, ...), each with
    its own test database (pytest-django adds the suffix) and here its own Redis database, so
    one worker's Celery tests never take another's tasks."""
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base + 1 + int(worker[2:])) % 16}"))


_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = _redis_database_of_this_worker(os.environ["REDIS_URL"], _worker)
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("DATABASE_URL", "sqlite:///:memory:")
# A real broker when there is one (CI: Redis), so the worker tests use the production path;
# every other test runs tasks eagerly and never touches it.
os.environ.setdefault("CELERY_BROKER_URL", os.environ.get("REDIS_URL") or "memory://")
os.environ.setdefault("EMAIL_URL", "consolemail://")
# Usage events a test writes (the demo's, the proxy's) never land in the checkout's var/, where
# `make run` would take them for its own demo data.
os.environ.setdefault("USAGE_EVENTS_DIR", tempfile.mkdtemp(prefix="portal-test-usage-events-"))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_ENDPOINT_URL", None)

from .settings import *  # noqa: E402, F403 (after the environment above)

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
AWS_ENDPOINT_URL = None
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Static files come from the app finders in tests; no collected STATIC_ROOT to serve.
MIDDLEWARE = [m for m in MIDDLEWARE if m != "whitenoise.middleware.WhiteNoiseMiddleware"]  # noqa: F405
# Test workers (celery_worker_on_broker) start and stop often: no cache warming at their start.
WARM_CACHES_ON_WORKER_START = False
