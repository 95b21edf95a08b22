"""A body nested past the parser's limit is a 400 in the API's error shape on every operation
that reads a body, never a 500 (the JSON decoder's RecursionError)."""

import json
from datetime import date

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from billing.models import Invoice, ModelPrice, PricingPlan
from core.api.parsers import MAX_DEPTH, nesting_depth
from customers.services import token_create
from usage.models import Alert, IngestRun

from .conftest import error_of


def _write_operations() -> list[tuple[str, str, bool]]:
    """(path, method, reads a body) for every POST/PUT/PATCH of the schema."""
    schema = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(public=True)))
    return [
        (path, method, "requestBody" in operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method in ("post", "put", "patch")
    ]


WRITES = _write_operations()


@pytest.fixture
def ids(customer, customer_user):
    token = token_create(customer=customer).token
    invoice = Invoice.objects.create(
        customer=customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
    )
    alert = Alert.objects.create(
        customer=customer, rule="monthly_tokens", threshold=80, period="2026-10", value=8, limit=10
    )
    run = IngestRun.objects.create(
        trigger="staff", engine="duckdb", start_day=date(2026, 10, 1), end_day=date(2026, 10, 1)
    )
    return {
        "customer_pk": customer.pk,
        "/users/": customer_user.pk,
        "/tokens/": token.pk,
        "/invoices/": invoice.pk,
        "/alerts/": alert.pk,
        "/ingest-runs/": run.pk,
        "/plans/": PricingPlan.objects.create(code="n", name="N", kind="per_token").pk,
        "/prices/": ModelPrice.objects.create(
            model_id="m", effective_from=date(2026, 1, 1), input_per_1k=1, output_per_1k=1
        ).pk,
        "/customers/": customer.pk,
    }


def _url(path: str, ids: dict) -> str:
    url = path.replace("{customer_pk}", str(ids["customer_pk"]))
    if "{id}" in url:
        head = url.split("{id}")[0]
        collection = "/" + head.rstrip("/").rsplit("/", 1)[-1] + "/"
        url = url.replace("{id}", str(ids[collection]))
    assert "{" not in url, url
    return url


def test_there_are_write_operations_to_check():
    assert sum(reads for _, _, reads in WRITES) >= 10, WRITES


@pytest.mark.parametrize(("path", "method", "reads_body"), WRITES)
@pytest.mark.parametrize("depth", [100_000, MAX_DEPTH + 1])
def test_deeply_nested_body_is_a_400(rw, ids, path, method, reads_body, depth):
    body = "[" * depth + "]" * depth
    response = getattr(rw, method)(_url(path, ids), data=body, content_type="application/json")
    if not reads_body:  # an action without a body (revoke, issue, ...) ignores it
        assert response.status_code < 500, (path, method, response.content)
        return
    assert response.status_code == 400, (path, method, response.status_code, response.content)
    error = error_of(response)
    assert error["type"] == "validation_error"
    assert "nested too deeply" in error["message"]


def test_the_allowed_depth_still_parses(rw, customer):
    nested = {"a": 1}
    for _ in range(MAX_DEPTH - 2):
        nested = {"a": nested}
    body = {"default_model_params": nested}
    assert nesting_depth(body) == MAX_DEPTH
    response = rw.patch(f"/api/v1/customers/{customer.pk}/", data=body, format="json")
    assert response.status_code != 500
    assert "nested too deeply" not in response.content.decode()


def test_nesting_depth_counts_levels():
    assert nesting_depth(1) == 0
    assert nesting_depth([]) == 1
    assert nesting_depth({"a": [1, {"b": []}]}) == 4
