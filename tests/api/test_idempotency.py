"""Idempotency-Key on every creating POST of the schema (each operation answering 201 or 202):
the header is documented, a retry with the same key and body replays the stored answer
without running again, and both answers conform to the schema (a replayed token creation has
no `token`, and the schema says so)."""

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import CreditGrant, CustomerPlan, Invoice, InvoiceLine, PricingPlan
from billing.services import invoice_issue, invoice_line_add
from core.models import User
from customers.models import Customer, Token
from customers.services import token_create
from usage.models import IngestRun

from .test_schemathesis import CHECKS, schema

pytestmark = pytest.mark.django_db

CREATING_POSTS = sorted(
    operation.path
    for operation in (result.ok() for result in schema.get_all_operations())
    if operation.method.upper() == "POST"
    and {"201", "202"} & set(operation.definition.raw["responses"])
)


@pytest.fixture
def objects(customer):
    draft = Invoice.objects.create(
        customer=customer, period_start=dt.date(2026, 9, 1), period_end=dt.date(2026, 9, 30)
    )
    issued = Invoice.objects.create(
        customer=customer, period_start=dt.date(2026, 10, 1), period_end=dt.date(2026, 10, 31)
    )
    invoice_line_add(invoice=issued, description="Usage", amount=Decimal("20.00"))
    issued = invoice_issue(invoice=issued)
    return {
        "customer": customer,
        "token": token_create(customer=customer, label="rotate-me").token,
        "draft": draft,
        "issued": issued,
        "plan": PricingPlan.objects.create(code="idem", name="Idem", kind="per_token"),
    }


def _request(path: str, o: dict) -> tuple[dict, dict, object]:
    """Path parameters, a valid body, and what counts the rows the operation creates."""
    customer = {"customer_pk": str(o["customer"].pk)}
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    table = {
        "/api/v1/customers/": (
            {},
            {"name": "Idem Co", "contact_email": "ops@idem.example"},
            Customer.objects,
        ),
        "/api/v1/customers/{customer_pk}/credits/": (
            customer,
            {"amount": "10.00", "kind": "purchase"},
            CreditGrant.objects,
        ),
        "/api/v1/customers/{customer_pk}/tokens/": (customer, {"label": "ci"}, Token.objects),
        "/api/v1/customers/{customer_pk}/tokens/{id}/rotate/": (
            {**customer, "id": str(o["token"].pk)},
            {"grace_hours": 1},
            Token.objects,
        ),
        "/api/v1/customers/{customer_pk}/users/": (
            customer,
            {"email": "new@acme.example", "full_name": "New Person"},
            User.objects,
        ),
        "/api/v1/invoices/{id}/credit-note/": (
            {"id": str(o["issued"].pk)},
            {"amount": "1.00", "reason": "goodwill"},
            Invoice.objects,
        ),
        "/api/v1/invoices/{id}/lines/": (
            {"id": str(o["draft"].pk)},
            {"description": "Setup fee", "amount": "5.00"},
            InvoiceLine.objects,
        ),
        "/api/v1/plans/{id}/assign/": (
            {"id": str(o["plan"].pk)},
            {"customer": str(o["customer"].pk), "effective_from": "2026-12-01"},
            CustomerPlan.objects,
        ),
        "/api/v1/usage/ingest-runs/": (
            {},
            {"start": str(yesterday - dt.timedelta(days=1)), "end": str(yesterday)},
            IngestRun.objects,
        ),
    }
    assert path in table, f"{path}: a new creating POST; add a valid request for it here"
    return table[path]


def test_every_creating_post_is_listed():
    """The list is taken from the schema: if it shrinks, the header stopped being documented."""
    assert len(CREATING_POSTS) >= 9


@pytest.mark.parametrize("path", CREATING_POSTS)
def test_creating_post_replays_with_the_same_key(path, rw, objects, keep_db_connection):
    operation = schema[path]["POST"]
    headers = [p for p in operation.definition.raw["parameters"] if p["in"] == "header"]
    assert [h["name"] for h in headers] == ["Idempotency-Key"]
    assert "422" in operation.definition.raw["responses"]

    path_parameters, body, rows = _request(path, objects)
    auth = {"Authorization": f"Bearer {_plaintext(rw)}", "Idempotency-Key": f"k-{path}"}

    def call():
        case = operation.Case(
            path_parameters=path_parameters, body=body, media_type="application/json"
        )
        return case.call_and_validate(headers=auth, checks=CHECKS)

    first = call()
    assert first.status_code in (201, 202), first.text
    count = rows.count()
    replay = call()
    assert replay.status_code == first.status_code
    assert replay.headers["idempotent-replayed"] == ["true"]
    assert rows.count() == count, "the replay ran the operation again"
    expected = {k: v for k, v in first.json().items() if k != "token"}
    assert replay.json() == expected
    assert "token" not in replay.json()

    other = operation.Case(
        path_parameters=path_parameters, body={**body, "extra": 1}, media_type="application/json"
    ).call(headers=auth)
    assert other.status_code == 422, other.text
    assert other.json()["error"]["type"] == "idempotency_error"


def _plaintext(client) -> str:
    return client._credentials["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
