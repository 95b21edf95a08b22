"""`make run` on another port (PORTAL_PORT): the emails the portal really sends, an invitation
and a usage alert, link to that port. The address is set up as `manage.py runstack` sets it
(runstack._set_local_addresses), then the real services send the emails (Django's locmem
outbox, Celery eager as in the tests)."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.core import mail

from customers.onboarding import customer_user_invite
from portal.management.commands import runstack
from tests.usage.conftest import dynamodb, put_counter  # noqa: F401 (a fixture)
from usage.alerts import alerts_check
from usage.duckdb_engine import DuckDBEngine

PORTAL_PORT, PROXY_PORT = 8123, 8124
NOW = dt.datetime(2026, 11, 23, 14, 30, tzinfo=dt.UTC)


@pytest.fixture
def stack_addresses(monkeypatch, settings):
    for name in ("PORTAL_BASE_URL", "PROXY_BASE_URL"):  # recorded, so restored afterwards
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    settings.PORTAL_BASE_URL = "http://testserver"  # what the tests use otherwise
    runstack._set_local_addresses(PORTAL_PORT, PROXY_PORT)
    return f"http://127.0.0.1:{PORTAL_PORT}/"


def _links(message) -> set[str]:
    texts = [message.body, *(content for content, _ in getattr(message, "alternatives", []))]
    return {url for text in texts for url in re.findall(r"https?://[^\s\"'<>]+", text)}


@pytest.mark.django_db
def test_the_invitation_links_to_the_configured_port(
    stack_addresses, customer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # sent once the invitation commits
        customer_user_invite(customer=customer, email="new.user@acme.example")
    (message,) = mail.outbox
    links = _links(message)
    assert links, message.body
    assert all(url.startswith(stack_addresses) for url in links), links
    assert any("/accounts/" in url or "password" in url for url in links), links


@pytest.mark.django_db
def test_the_usage_alert_links_to_the_configured_port(
    stack_addresses,
    dynamodb,  # noqa: F811 (the usage tests' fixture)
    customer,
    django_capture_on_commit_callbacks,
):
    customer.monthly_budget = Decimal("50.00")
    customer.save()
    put_counter(dynamodb, customer.pk, "MONTH#2026-11", requests=3, spend_micros=25_000_000)
    with django_capture_on_commit_callbacks(execute=True):  # sent once the check commits
        assert alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine()) == 1
    (message,) = mail.outbox
    assert "crossing the 50 % alert threshold" in message.body
    links = _links(message)
    assert f"{stack_addresses}app/usage/" in links, links
    assert all(url.startswith(stack_addresses) for url in links), links
