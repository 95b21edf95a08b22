"""Every operation in the schema against every kind of caller: anonymous 401, revoked key 401,
read-only key 403 on writes, customer users 403 on writes and on staff-only resources, and
404 for another customer's objects. Nothing may answer 2xx to a caller it should refuse."""

from datetime import date
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from billing.models import Invoice
from billing.services import invoice_issue, invoice_line_add
from core.models import ApiKey
from customers.services import token_create
from portal.api.keys import api_key_create, api_key_revoke
from usage.models import Alert

from .test_schemathesis import _load_schema

pytestmark = pytest.mark.django_db

SCHEMA = _load_schema()
OPERATIONS = [
    (method.upper(), path)
    for path, item in SCHEMA["paths"].items()
    for method in item
    if method in {"get", "post", "put", "patch", "delete"}
]
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
# What customer users may read (of their own customer); the rest is staff only.
CUSTOMER_READABLE = (
    "/api/v1/me/",
    "/api/v1/customers/",
    "/api/v1/usage/",
    "/api/v1/alerts/",
    "/api/v1/invoices/",
)
STAFF_ONLY = ("/api/v1/usage/ingest-runs/",)


def _url(path: str, objects: dict) -> str:
    for name, value in objects.items():
        path = path.replace("{" + name + "}", str(value))
    return path


def _objects_of(customer, customer_user):
    token = token_create(customer=customer).token
    invoice = Invoice.objects.create(
        customer=customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
    )
    invoice_line_add(invoice=invoice, description="Usage", amount=Decimal("1.00"))
    invoice_issue(invoice=invoice)
    alert = Alert.objects.create(
        customer=customer, rule="monthly_tokens", threshold=80, period="2026-10", value=8, limit=10
    )
    return {
        "customer_pk": customer.pk,
        "token": token.pk,
        "invoice": invoice.pk,
        "alert": alert.pk,
    }


def _path_ids(path, objs, user_pk):
    ids = {"customer_pk": objs["customer_pk"], "id": objs["customer_pk"]}
    if "/tokens/" in path:
        ids["id"] = objs["token"]
    elif "/invoices/" in path:
        ids["id"] = objs["invoice"]
    elif "/users/" in path:
        ids["id"] = user_pk
    elif "/alerts/" in path:
        ids["id"] = objs["alert"]
    elif not path.startswith("/api/v1/customers/{id}"):
        ids["id"] = 1
    return ids


@pytest.fixture
def setup(customer, customer_user, other_customer, staff_user):
    mine = _objects_of(customer, customer_user)
    theirs = _objects_of(other_customer, customer_user)
    return {"mine": mine, "theirs": theirs, "user": customer_user, "staff": staff_user}


@pytest.mark.parametrize("method, path", OPERATIONS)
def test_anonymous_and_revoked_keys_get_401(setup, method, path):
    url = _url(path, _path_ids(path, setup["mine"], setup["user"].pk))
    assert APIClient().generic(method, url, "{}", "application/json").status_code == 401
    issued = api_key_create(name="gone", scope=ApiKey.Scope.READ_WRITE, created_by=setup["staff"])
    api_key_revoke(api_key=issued.api_key)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    assert client.generic(method, url, "{}", "application/json").status_code == 401


@pytest.mark.parametrize("method, path", [op for op in OPERATIONS if op[0] in WRITES])
def test_read_only_key_cannot_write(setup, method, path):
    issued = api_key_create(name="ro", scope=ApiKey.Scope.READ, created_by=setup["staff"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    url = _url(path, _path_ids(path, setup["mine"], setup["user"].pk))
    assert client.generic(method, url, "{}", "application/json").status_code == 403


@pytest.mark.parametrize("method, path", OPERATIONS)
def test_customer_user(setup, method, path):
    client = APIClient()
    client.force_login(setup["user"])
    own = _url(path, _path_ids(path, setup["mine"], setup["user"].pk))
    status = client.generic(method, own, "{}", "application/json").status_code
    readable = path.startswith(CUSTOMER_READABLE) and not path.startswith(STAFF_ONLY)
    if method in WRITES or not readable:
        assert status == 403, (method, own, status)
        return
    assert status == 200, (method, own, status)
    if "{" in path and path != "/api/v1/customers/{customer_pk}/users/{id}/":
        theirs = _url(path, _path_ids(path, setup["theirs"], setup["user"].pk))
        other = client.generic(method, theirs, "{}", "application/json").status_code
        assert other == 404, (method, theirs, other)
