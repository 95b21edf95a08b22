"""Production settings: safe defaults, `check --deploy` clean, missing variables named."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION_ENV = {
    "PORTAL_READ_DOT_ENV": "false",
    "DJANGO_SETTINGS_MODULE": "portal.settings",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "DATABASE_URL": "sqlite:////tmp/portal-deploy-check.sqlite3",
    "ALLOWED_HOSTS": "portal.example.com",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "EMAIL_URL": "smtp+tls://mailer:hunter2@127.0.0.1:587",
}


def _manage(*args, env):
    dropped = {*PRODUCTION_ENV, "DEBUG", "CELERY_BROKER_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_variables():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_debug_is_off_unless_set():
    result = _manage(
        "shell", "-c", "from django.conf import settings; print(settings.DEBUG)", env=PRODUCTION_ENV
    )
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr


def test_missing_production_variable_is_named():
    for name in ("SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS", "REDIS_URL", "EMAIL_URL"):
        env = {k: v for k, v in PRODUCTION_ENV.items() if k != name}
        result = _manage("check", env=env)
        assert result.returncode != 0, name
        assert name in result.stderr, (name, result.stderr[-500:])


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("DATABASE_URL", "", "Set the DATABASE_URL environment variable"),
        ("DATABASE_URL", "   ", "Set the DATABASE_URL environment variable"),
        ("DATABASE_URL", "nonsense", "DATABASE_URL is not a valid URL"),
        ("DATABASE_URL", "mysqll://u:s3cr3t-pw@db/portal", "DATABASE_URL is not a valid URL"),
        ("EMAIL_URL", "", "Set the EMAIL_URL environment variable"),
        ("EMAIL_URL", "smtpp://u:s3cr3t-pw@mail:587", "EMAIL_URL is not a valid URL"),
        ("SECRET_KEY", "", "SECRET_KEY environment variable is empty"),
        ("SECRET_KEY", "short", "SECRET_KEY is too weak"),
        ("SECRET_KEY", "django-insecure-" + "x1y2z3" * 10, "SECRET_KEY is too weak"),
        ("SECRET_KEY", "a" * 60, "SECRET_KEY is too weak"),
    ],
)
def test_bad_production_setting_refuses_to_start_naming_it(name, value, says):
    result = _manage("check", env={**PRODUCTION_ENV, name: value})
    assert result.returncode != 0, (name, value)
    assert says in result.stderr, result.stderr[-800:]
    assert "KeyError" not in result.stderr
    assert "s3cr3t-pw" not in result.stderr + result.stdout  # never echo a URL's password


def test_debug_keeps_the_embedded_defaults_for_empty_urls():
    env = {**PRODUCTION_ENV, "DEBUG": "true", "DATABASE_URL": "", "EMAIL_URL": ""}
    env["PORTAL_VAR_DIR"] = "/tmp/portal-settings-debug-test"
    code = (
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.EMAIL_BACKEND)"
    )
    result = _manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr[-800:]
    assert result.stdout.split()[-2:] == [
        "django.db.backends.sqlite3",
        "django.core.mail.backends.console.EmailBackend",
    ]


def test_env_example_lists_every_variable_the_settings_read():
    import re

    settings_src = (ROOT / "portal" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', settings_src))
    example = (ROOT / ".env.example").read_text()
    missing = sorted(name for name in read if f"{name}=" not in example)
    assert not missing, f".env.example lacks {missing}"


def test_the_debug_page_hides_webhook_addresses_and_urls_with_passwords(settings):
    from django.views.debug import get_default_exception_reporter_filter

    settings.ALERTS_SLACK_WEBHOOK_URL = "https://hooks.slack.com/services/T000/B000/secretpart"
    settings.REDIS_URL = "redis://:hunter2@127.0.0.1:6379/0"
    shown = get_default_exception_reporter_filter().get_safe_settings()
    assert "secretpart" not in str(shown["ALERTS_SLACK_WEBHOOK_URL"])
    assert "hunter2" not in str(shown["REDIS_URL"])
    assert shown["TIME_ZONE"] == "UTC"  # the others stay readable
