"""Content-Security-Policy (core/csp.py): scripts from this host only, on every page; the
templates keep it workable (no inline script, no inline event handler). The browser check
that nothing is blocked is tests/browser/test_csp.py."""

import re
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def _directives(header: str) -> dict:
    return {p.split()[0]: p.split()[1:] for p in (d.strip() for d in header.split(";")) if p}


@pytest.mark.parametrize("url", ["/accounts/login/", "/app/", "/healthz", "/api/v1/me/"])
def test_every_answer_limits_scripts_to_this_host(customer_client, url):
    policy = _directives(customer_client.get(url)["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"] and policy["form-action"] == ["'self'"]


def test_only_the_api_docs_may_run_their_inline_script(staff_client):
    for url in ("/api/docs/", "/api/redoc/"):
        policy = _directives(staff_client.get(url)["Content-Security-Policy"])
        assert policy["script-src"] == ["'self'", "'unsafe-inline'"]
    page = _directives(staff_client.get("/staff/")["Content-Security-Policy"])
    assert "'unsafe-inline'" not in page["script-src"]


def test_templates_have_no_inline_script_or_event_handler():
    """What the policy would block: keep behaviour in static .js files (data-* hooks)."""
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
    handler = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
    javascript_url = re.compile(r"""(href|src|action)\s*=\s*["']\s*javascript:""", re.IGNORECASE)
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        if "email" in path.parts:
            continue  # emails are not served by the portal
        text = path.read_text()
        for pattern in (inline_script, handler, javascript_url):
            offenders += [
                f"{path.relative_to(TEMPLATES)}: {m.group(0)}" for m in pattern.finditer(text)
            ]
    assert offenders == []
