"""The API's token list and detail give each token's live last use, as the web pages do: a call
counted by the real proxy handler shows in `last_used_at` at once, without a usage import, read
with one batched read of the proxy's counters per page (never one per token)."""

import datetime as dt

import pytest

from core.aws import aws_client
from customers import services
from customers.models import Token
from customers.sync import dynamodb_client
from tests.proxy.conftest import chat, event, make_app

pytestmark = pytest.mark.django_db


@pytest.fixture
def ddb(aws):
    return dynamodb_client()


def _batch_reads(client) -> list:
    calls = []
    client.meta.events.register(
        "before-parameter-build.dynamodb.BatchGetItem", lambda **kw: calls.append(kw)
    )
    return calls


def test_a_call_through_the_proxy_shows_in_the_apis_last_use_without_an_import(
    ddb, rw, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # the outbox delivers on commit
        customer = services.customer_create(name="Acme", contact_email="a@acme.example")
        used = services.token_create(customer=customer, label="used")
        unused = services.token_create(customer=customer, label="unused")
    list_url = f"/api/v1/customers/{customer.pk}/tokens/"
    before = {row["label"]: row["last_used_at"] for row in rw.get(list_url).json()["results"]}
    assert before == {"used": None, "unused": None}

    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    app = make_app(ddb)  # the real handler, reading the items the portal's outbox wrote
    response = app.handle(event(chat(model="sandbox.echo-v1"), token=used.plaintext))
    assert response["statusCode"] == 200, response["body"]

    rows = {row["label"]: row for row in rw.get(list_url).json()["results"]}
    seen = dt.datetime.fromisoformat(rows["used"]["last_used_at"].replace("Z", "+00:00"))
    assert start <= seen <= dt.datetime.now(dt.UTC)
    assert rows["unused"]["last_used_at"] is None
    detail = rw.get(f"{list_url}{used.token.pk}/").json()
    assert detail["last_used_at"] == rows["used"]["last_used_at"]
    assert Token.objects.get(pk=used.token.pk).last_used_at is None  # no import ran
    assert Token.objects.get(pk=unused.token.pk).last_used_at is None


def test_one_batched_read_per_page_whatever_the_number_of_tokens(ddb, rw, customer):
    for n in range(12):
        services.token_create(customer=customer, label=f"app-{n}")
    reads = _batch_reads(aws_client("dynamodb"))  # the client the portal reads counters with
    page = rw.get(f"/api/v1/customers/{customer.pk}/tokens/", {"page_size": 10}).json()
    assert len(page["results"]) == 10
    assert len(reads) == 1
    assert len(reads[0]["params"]["RequestItems"]) == 1  # one table, all the page's keys
    (table,) = reads[0]["params"]["RequestItems"].values()
    assert len(table["Keys"]) == len(page["results"])


def test_the_nightly_figure_is_kept_when_it_is_later_or_the_counters_are_unreadable(
    ddb, rw, customer, monkeypatch
):
    issued = services.token_create(customer=customer, label="batch")
    nightly = dt.datetime(2026, 11, 20, 15, 30, 12, tzinfo=dt.UTC)
    Token.objects.filter(pk=issued.token.pk).update(last_used_at=nightly)
    url = f"/api/v1/customers/{customer.pk}/tokens/{issued.token.pk}/"
    assert rw.get(url).json()["last_used_at"] == "2026-11-20T15:30:12Z"

    def unavailable(*args, **kwargs):
        raise RuntimeError("DynamoDB is down")

    monkeypatch.setattr("usage.counters.tokens_last_used", unavailable)
    response = rw.get(f"/api/v1/customers/{customer.pk}/tokens/")
    assert response.status_code == 200
    assert response.json()["results"][0]["last_used_at"] == "2026-11-20T15:30:12Z"
