"""Settings, read from the environment (12-factor) through django-environ.

Every variable is listed in `.env.example`. A local `.env` (written by `make run`) is read
when present, so commands run by hand use the same database and services as the running stack.
Production defaults are safe: DEBUG is off unless set, and the variables production needs
(SECRET_KEY, DATABASE_URL, ALLOWED_HOSTS, REDIS_URL) have no default when DEBUG is off.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if env.bool("PORTAL_READ_DOT_ENV", default=True) and (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY.strip():
    raise ImproperlyConfigured("The SECRET_KEY environment variable is empty; set a random value.")
if not DEBUG and (
    len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure-")
):
    # Sessions, password-reset links and signed values all rest on it.
    raise ImproperlyConfigured(
        "SECRET_KEY is too weak for production: use at least 50 random characters, e.g. "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )
# Local state of `make run`: SQLite file, file queue, beat schedule, usage event files.
VAR_DIR = Path(env("PORTAL_VAR_DIR", default=str(BASE_DIR / "var")))


def _required_url(name: str, local_default: str) -> str:
    """A URL variable production must set: empty or missing is refused (naming it) unless
    DEBUG, where the embedded default stands in."""
    value = env.str(name, default="").strip()
    if value:
        return value
    if DEBUG:
        return local_default
    raise ImproperlyConfigured(f"Set the {name} environment variable (it is empty or missing).")


def _parsed(name: str, parse, value: str):
    # Never echo the value: it usually holds a password.
    scheme = value.split("://", 1)[0] if "://" in value else "(none)"
    problem = f"{name} is not a valid URL: its scheme {scheme!r} is not known."
    try:
        parsed = parse(value)
    except Exception:  # django-environ raises several kinds
        raise ImproperlyConfigured(problem) from None
    if "." not in (parsed.get("ENGINE") or parsed.get("EMAIL_BACKEND") or ""):
        raise ImproperlyConfigured(problem)
    return parsed


if DEBUG:
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
else:
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
DATABASES = {
    "default": _parsed(
        "DATABASE_URL",
        environ.Env.db_url_config,
        _required_url("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
    )
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several processes (web, worker, beat) share the file under `make run`.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    # Two-factor sign-in (core/two_factor.py): authenticator-app codes and recovery codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    # Single sign-on for staff through OpenID Connect (core/sso.py); off unless configured.
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "core",  # the ground (database label "portal")
    "customers",
    "usage",
    "billing",
    "portal",  # the top floor: composes the apps above (docs/architecture.md)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # With STAFF_REQUIRE_2FA on, a staff session without a code reaches only the code pages.
    "core.two_factor.StaffTwoFactorMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.api.errors.ApiJsonErrorsMiddleware",
    "core.errors.ServiceErrorMiddleware",
    "core.api.caching.ApiNoStoreMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns lockouts raised by authentication into responses.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.portal",
            ],
        },
    },
]

AUTH_USER_MODEL = "portal.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Records single sign-on logins (core/sso.py); passwords are checked by ModelBackend.
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Lock out repeated failed logins (django-axes): per account and address pair.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_CALLABLE = "core.forms.axes_username"
AXES_IPWARE_PROXY_COUNT = env.int("AXES_IPWARE_PROXY_COUNT", default=0)
# A wrong two-factor code is a failed login too; the code is never written to axes' records.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "code"]

# Two-factor sign-in (docs/architecture.md, "Sign-in"). Customer users may turn it on for
# themselves; with STAFF_REQUIRE_2FA every staff user must (they enrol at their next login).
STAFF_REQUIRE_2FA = env.bool("STAFF_REQUIRE_2FA", default=False)
# The name authenticator apps show beside the account.
OTP_TOTP_ISSUER = env.str("TWO_FACTOR_ISSUER", default="Bedrock Usage Portal")
# django-otp's own throttle stays on: after a wrong code the next try waits 1, 2, 4 ... s.
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# Single sign-on for staff through OpenID Connect (django-allauth, core/sso.py): on when the
# provider's address, client id and secret are all set. Only existing active staff users whose
# verified email matches sign in this way; no account is ever created by it.
OIDC_PROVIDER_URL = env.str("OIDC_PROVIDER_URL", default="").strip()
OIDC_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="").strip()
OIDC_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="").strip()
OIDC_PROVIDER_NAME = env.str("OIDC_PROVIDER_NAME", default="single sign-on").strip()
_oidc = {"OIDC_PROVIDER_URL": OIDC_PROVIDER_URL, "OIDC_CLIENT_ID": OIDC_CLIENT_ID}
_oidc["OIDC_CLIENT_SECRET"] = OIDC_CLIENT_SECRET
if any(_oidc.values()) and not all(_oidc.values()):
    _missing = ", ".join(name for name, value in _oidc.items() if not value)
    raise ImproperlyConfigured(f"Single sign-on needs all three OIDC_ settings: set {_missing}.")
if OIDC_PROVIDER_URL and not (
    OIDC_PROVIDER_URL.startswith("https://")
    or OIDC_PROVIDER_URL.startswith(("http://127.0.0.1:", "http://localhost:"))
):
    raise ImproperlyConfigured("OIDC_PROVIDER_URL must be an https:// address.")
SSO_PROVIDER_ID = "sso"  # in the callback address: /accounts/sso/sso/login/callback/
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": SSO_PROVIDER_ID,
                "name": OIDC_PROVIDER_NAME,
                "client_id": OIDC_CLIENT_ID,
                "secret": OIDC_CLIENT_SECRET,
                "settings": {"server_url": OIDC_PROVIDER_URL},
            }
        ]
        if OIDC_PROVIDER_URL
        else [],
    }
}
SOCIALACCOUNT_ADAPTER = "core.sso.StaffSocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
ACCOUNT_ADAPTER = "core.sso.NoSignupAccountAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_EMAIL_VERIFICATION = "none"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# One date format on every page ("25 Nov 2026", "25 Nov 2026 14:05 UTC"): core/formats/en.
FORMAT_MODULE_PATH = ["core.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# plotly.min.js (charts) is vendored as portal/static/vendor/plotly/ (docs/dashboards.md).
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Security: safe by default, relaxed only by DEBUG or explicit variables.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancer and container health checks call plain HTTP on the instance: answer them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^healthz/live$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=60 * 60 * 12)
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (core/csp.py): this host's scripts only, no plugins, no framing.
_CSP_COMMON = (
    "default-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
CONTENT_SECURITY_POLICY = f"{_CSP_COMMON}; script-src 'self'; style-src 'self' 'unsafe-inline'"
# Swagger UI and Redoc start from an inline script; Redoc runs a worker from a blob: URL.
CSP_API_DOCS_PATHS = ("/api/docs/", "/api/redoc/")
CSP_API_DOCS = (
    f"{_CSP_COMMON}; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "worker-src 'self' blob:"
)

# Email: EMAIL_URL such as smtp+tls://user:pass@host:587 or consolemail:// (see django-environ).
# Required in production: without it, password resets, invitations and alerts would go
# nowhere (printed to a console nobody reads).
vars().update(
    _parsed(
        "EMAIL_URL",
        environ.Env.email_url_config,
        _required_url("EMAIL_URL", "consolemail://"),
    )
)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Bedrock Usage Portal <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
STAFF_ALERT_EMAILS = env.list("STAFF_ALERT_EMAILS", default=[])
PORTAL_BASE_URL = env("PORTAL_BASE_URL", default="http://127.0.0.1:8000")
PROXY_BASE_URL = env("PROXY_BASE_URL", default="http://127.0.0.1:8001")

# Tokens and their sync to DynamoDB (customers app). A lifetime of 0 days means no expiry.
TOKEN_DEFAULT_LIFETIME_DAYS = env.int("TOKEN_DEFAULT_LIFETIME_DAYS", default=365)
TOKEN_ROTATION_GRACE_HOURS = env.float("TOKEN_ROTATION_GRACE_HOURS", default=24)
TOKEN_EXPIRY_WARNING_DAYS = env.int("TOKEN_EXPIRY_WARNING_DAYS", default=14)
# A customer's rotation policy (customers/rotation.py): the notice goes out this many days
# before a scheduled rotation; the rotated token then keeps working this many days.
TOKEN_ROTATION_NOTICE_DAYS = env.int("TOKEN_ROTATION_NOTICE_DAYS", default=7)
TOKEN_SCHEDULED_ROTATION_GRACE_DAYS = env.int("TOKEN_SCHEDULED_ROTATION_GRACE_DAYS", default=7)
SYNC_RETRY_BASE_SECONDS = env.float("SYNC_RETRY_BASE_SECONDS", default=5)
SYNC_RETRY_MAX_SECONDS = env.float("SYNC_RETRY_MAX_SECONDS", default=3600)

# Celery: Redis in production; the filesystem transport (no server) under `make run`.
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="") or REDIS_URL
if not CELERY_BROKER_URL:
    if not DEBUG:
        raise ImproperlyConfigured("Set the REDIS_URL environment variable (the Celery broker).")
    CELERY_BROKER_URL = "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery-queue"
    _queue_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "control_folder": str(_queue_dir / "control"),  # else ./control in the working directory
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Beat records its own heartbeat (portal/beat.py); core/heartbeats.py explains both.
CELERY_BEAT_SCHEDULER = "portal.beat:HeartbeatScheduler"

# /healthz (portal/health.py): a worker or beat heartbeat older than this is stale (the worker
# heartbeat task runs every third of it, at most every minute), and so is an outbox change
# still undelivered to DynamoDB after HEALTH_OUTBOX_STALE_SECONDS.
HEALTH_HEARTBEAT_STALE_SECONDS = env.int("HEALTH_HEARTBEAT_STALE_SECONDS", default=180)
HEALTH_OUTBOX_STALE_SECONDS = env.int("HEALTH_OUTBOX_STALE_SECONDS", default=300)

if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# AWS: real AWS in production; the embedded moto server (AWS_ENDPOINT_URL) under `make run`.
AWS_REGION = env("AWS_REGION", default="us-east-1")
AWS_ENDPOINT_URL = env("AWS_ENDPOINT_URL", default=None)
USAGE_BUCKET = env("USAGE_BUCKET", default="bedrock-usage-events")
USAGE_EVENTS_DIR = env("USAGE_EVENTS_DIR", default=str(VAR_DIR / "usage-events"))

# Usage pipeline (usage app): the SQL engine that aggregates the events, Athena in production
# and DuckDB over USAGE_EVENTS_DIR on a laptop; same query text on both.
USAGE_ENGINE = env("USAGE_ENGINE", default="duckdb" if DEBUG else "athena")
ATHENA_DATABASE = env("ATHENA_DATABASE", default="bedrock_usage")
ATHENA_TABLE = env("ATHENA_TABLE", default="usage_events")
ATHENA_WORKGROUP = env("ATHENA_WORKGROUP", default="primary")
ATHENA_OUTPUT_LOCATION = env(
    "ATHENA_OUTPUT_LOCATION", default=f"s3://{USAGE_BUCKET}/athena-results/"
)
ATHENA_TIMEOUT_SECONDS = env.int("ATHENA_TIMEOUT_SECONDS", default=900)
# Nightly ingest of yesterday (UTC), once that day's usage events have landed.
USAGE_INGEST_HOUR = env.int("USAGE_INGEST_HOUR", default=3)
USAGE_INGEST_MINUTE = env.int("USAGE_INGEST_MINUTE", default=0)
# How far back the nightly run looks for days that were never ingested.
USAGE_CATCHUP_DAYS = env.int("USAGE_CATCHUP_DAYS", default=35)
# A run "running" with no progress for this long lost its worker and is resumed (checked every
# 10 min). Keep it above a day's worst case: four Athena queries of ATHENA_TIMEOUT_SECONDS.
USAGE_INGEST_STALE_MINUTES = env.int("USAGE_INGEST_STALE_MINUTES", default=90)
USAGE_ALERT_CHECK_MINUTES = env.int("USAGE_ALERT_CHECK_MINUTES", default=5)
# Default for the hourly rule (tokens per user, application and model in one hour); 0 = off.
USAGE_HOURLY_TOKEN_THRESHOLD = env.int("USAGE_HOURLY_TOKEN_THRESHOLD", default=0)
USAGE_WEBHOOK_TIMEOUT_SECONDS = env.int("USAGE_WEBHOOK_TIMEOUT_SECONDS", default=5)
# Unusual usage found at import (usage/anomalies.py) also raises an alert (a customer's alert
# settings can turn it off for that customer); off: the findings are only listed for staff.
USAGE_ANOMALY_ALERTS = env.bool("USAGE_ANOMALY_ALERTS", default=True)
# Alert channels beside email and the signed webhooks (usage/notifications.py): the deployment's
# SNS topic (deploy/template.yaml output AlertsTopicArn; under `make run` a topic of the emulator,
# created at start), and a Slack-compatible incoming webhook for staff (the customers' own are
# set per customer). Empty: that channel is off.
ALERTS_SNS_TOPIC_ARN = env.str("ALERTS_SNS_TOPIC_ARN", default="")
ALERTS_SLACK_WEBHOOK_URL = env.str("ALERTS_SLACK_WEBHOOK_URL", default="")
# The debug error page (DEBUG only) hides webhook addresses and *_URL settings too (core/debug.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "core.debug.SettingsFilter"
# Staff live figures (core/live.py): shown as fresh up to this age (older: with their time,
# while read again); re-read by beat every
# STAFF_LIVE_REFRESH_SECONDS while a staff page showed one in the last STAFF_LIVE_WATCH_SECONDS.
STAFF_LIVE_MAX_AGE_SECONDS = env.int("STAFF_LIVE_MAX_AGE_SECONDS", default=10)
STAFF_LIVE_REFRESH_SECONDS = env.int("STAFF_LIVE_REFRESH_SECONDS", default=5)
STAFF_LIVE_WATCH_SECONDS = env.int("STAFF_LIVE_WATCH_SECONDS", default=300)
# The last live figure read is kept this long, shown with its time while it is read again.
STAFF_LIVE_KEEP_SECONDS = env.int("STAFF_LIVE_KEEP_SECONDS", default=24 * 3600)
# A starting Celery worker queues portal.tasks.warm_after_deploy (the staff caches, filled once).
WARM_CACHES_ON_WORKER_START = env.bool("WARM_CACHES_ON_WORKER_START", default=True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.api.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.api.auth.IsStaffWithKeyScope"],
    "DEFAULT_THROTTLE_CLASSES": ["core.api.auth.PerKeyRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.DepthLimitedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.StableCursorPagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.errors.api_exception_handler",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Bedrock Usage Portal API",
    "DESCRIPTION": (
        "Automation for staff (API keys of service accounts: read or read-write scope) and "
        "read-only access for customer users to their own data. Errors always have the shape "
        '{"error": {"type", "code", "message", "request_id"}}.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `status` or `kind`; name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "CustomerStatusEnum": "customers.models.Customer.Status",
        "TokenStatusEnum": "customers.models.Token.Status",
        "InvoiceStatusEnum": "billing.models.Invoice.Status",
        "InvoiceKindEnum": "billing.models.Invoice.Kind",
        "InvoiceLineKindEnum": "billing.models.InvoiceLine.Kind",
        "PlanKindEnum": "billing.models.PricingPlan.Kind",
        "CreditGrantKindEnum": "billing.models.CreditGrant.Kind",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        # The filesystem transport of `make run` has no host name; kombu warns on every use.
        "kombu.connection": {"level": "ERROR"},
    },
}

# Billing: money is Decimal; every invoice line is rounded to cents with BILLING_ROUNDING
# (a decimal module constant such as ROUND_HALF_UP or ROUND_HALF_EVEN).
BILLING_CURRENCY = env("BILLING_CURRENCY", default="USD")
BILLING_TAX_RATE = env("BILLING_TAX_RATE", default="0")
BILLING_ROUNDING = env("BILLING_ROUNDING", default="ROUND_HALF_UP")
BILLING_INVOICE_PREFIX = env("BILLING_INVOICE_PREFIX", default="INV")
BILLING_DEFAULT_MARKUP_PERCENT = env("BILLING_DEFAULT_MARKUP_PERCENT", default="0")
BILLING_LOW_BALANCE_THRESHOLD = env("BILLING_LOW_BALANCE_THRESHOLD", default="10.00")
BILLING_SELLER_NAME = env("BILLING_SELLER_NAME", default="Bedrock Usage Portal")
# The seller block of invoice PDFs: the address may span lines ("\n" in the variable).
BILLING_SELLER_ADDRESS = env.str("BILLING_SELLER_ADDRESS", default="", multiline=True)
BILLING_SELLER_TAX_ID = env("BILLING_SELLER_TAX_ID", default="")
# An issued invoice is due this many days after its issue date (shown on the PDF and pages).
try:
    BILLING_PAYMENT_TERMS_DAYS = env.int("BILLING_PAYMENT_TERMS_DAYS", default=30)
except ValueError:
    BILLING_PAYMENT_TERMS_DAYS = -1
if not 0 <= BILLING_PAYMENT_TERMS_DAYS <= 365:
    raise ImproperlyConfigured("BILLING_PAYMENT_TERMS_DAYS must be a whole number from 0 to 365.")
# The payment terms printed on invoices; empty: "Payment due within N days of the issue date."
BILLING_PAYMENT_TERMS = env("BILLING_PAYMENT_TERMS", default="")

# Stripe (docs/billing.md, "Getting paid with Stripe"): on when both keys are set; without them
# invoices are marked paid by hand, there are no pay buttons and the webhook URL answers 404.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
# Optional: Checkout (a redirect) does not need it; kept for a future embedded form.
STRIPE_PUBLISHABLE_KEY = env("STRIPE_PUBLISHABLE_KEY", default="")
# Another API address (e.g. stripe-mock on 127.0.0.1:12111); empty: Stripe's own.
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")
# What a customer may buy as prepaid credit in one payment, in BILLING_CURRENCY.
STRIPE_CREDIT_PURCHASE_MIN = env("STRIPE_CREDIT_PURCHASE_MIN", default="10.00")
STRIPE_CREDIT_PURCHASE_MAX = env("STRIPE_CREDIT_PURCHASE_MAX", default="5000.00")
if bool(STRIPE_SECRET_KEY) != bool(STRIPE_WEBHOOK_SECRET):
    _missing = "STRIPE_WEBHOOK_SECRET" if STRIPE_SECRET_KEY else "STRIPE_SECRET_KEY"
    raise ImproperlyConfigured(
        f"Stripe needs both STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET: set {_missing} too "
        "(payments are only recorded from signed webhook events)."
    )
if STRIPE_SECRET_KEY:
    # The pay buttons post to the portal, which redirects to Stripe Checkout.
    CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'", "form-action 'self' https://checkout.stripe.com"
    )

# Demo logins created by `manage.py seed_demo` (make run writes random ones to .env).
DEMO_STAFF_PASSWORD = env("DEMO_STAFF_PASSWORD", default="")
DEMO_CUSTOMER_PASSWORD = env("DEMO_CUSTOMER_PASSWORD", default="")
