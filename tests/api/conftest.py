"""API clients of every kind the permission rules distinguish."""

import pytest
from django.core import signals
from django.db import close_old_connections
from rest_framework.test import APIClient

from core.models import ApiKey
from portal.api.keys import api_key_create


def _json_client() -> APIClient:
    """The API reads JSON bodies only."""
    client = APIClient()
    client.default_format = "json"
    return client


def _client_with_key(staff_user, scope):
    issued = api_key_create(name=f"test-{scope}", scope=scope, created_by=staff_user)
    client = _json_client()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    client.api_key = issued.api_key
    return client


@pytest.fixture
def anon():
    return _json_client()


@pytest.fixture
def rw(staff_user):
    """A staff service account's read-write key."""
    return _client_with_key(staff_user, ApiKey.Scope.READ_WRITE)


@pytest.fixture
def ro(staff_user):
    """A staff service account's read-only key."""
    return _client_with_key(staff_user, ApiKey.Scope.READ)


@pytest.fixture
def staff_api(staff_user):
    client = _json_client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def customer_api(customer_user):
    client = _json_client()
    client.force_login(customer_user)
    return client


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"type", "code", "message", "request_id"} <= set(body["error"])
    return body["error"]


@pytest.fixture
def keep_db_connection():
    """For requests through the WSGI handler (schemathesis): it closes the connection after
    each request, which inside a test transaction (PostgreSQL) would end the test's transaction
    too. Django's test client does the same."""
    for signal in (signals.request_started, signals.request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (signals.request_started, signals.request_finished):
        signal.connect(close_old_connections)
