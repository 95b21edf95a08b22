"""Prices reach the proxy through the contract: price book changes -> outbox rows (same
transaction) -> price items in DynamoDB (moto) -> read back by proxy/prices.py; the rounding
rule; versions; the sweeper; reconciliation repairing missing, hostile and stale items."""

import threading
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.utils import timezone

from billing import pricing
from billing.models import ModelPrice, PriceBookVersion
from billing.price_sync import (
    epoch_of,
    outbox_enqueue_prices_in_migration,
    price_payload,
    prices_reconcile,
    to_micros,
)
from billing.pricing import PricingError
from billing.services import model_price_add
from customers import tasks
from customers.models import AuditEvent, SyncOutbox
from customers.reconcile import dynamodb_reconcile
from customers.sync import dynamodb_client, outbox_deliver
from proxy import contract, prices
from proxy import models as proxy_models

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
HAIKU_PROFILE = "us.anthropic.claude-3-haiku-20240307-v1:0"
JAN_2024 = date(2024, 1, 1)


@pytest.fixture
def ddb(transactional_db, aws):
    """The portal's DynamoDB client inside moto; transactional, so delivery runs on commit.
    The tests start from an empty price book (SQL: no save, no outbox row)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {ModelPrice._meta.db_table}")
    return dynamodb_client()


def add_haiku(effective_from=JAN_2024, inp="0.00025", out="0.00125", **extra):
    return model_price_add(
        model_id=HAIKU,
        effective_from=effective_from,
        input_per_1k=Decimal(inp),
        output_per_1k=Decimal(out),
        display_name="Claude 3 Haiku",
        **extra,
    )


def price_rows():
    return SyncOutbox.objects.filter(kind=SyncOutbox.Kind.PRICE)


def today():
    return timezone.now().astimezone(UTC).date()


# --- the rounding rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "micros"),
    [
        ("0.00025", 250),  # Claude 3 Haiku input, per 1K
        ("0.00125", 1250),
        ("0.000035", 35),  # Nova Micro input
        ("0.075", 75_000),  # Claude 3 Opus output
        ("0", 0),
        ("0.0000175", 18),  # half a micro-unit: up
        ("0.0000174999", 17),  # under half: down
        ("0.0000005", 1),
        ("0.000000499", 0),
        ("1000000", contract.PRICE_MICROS_LIMIT),
    ],
)
def test_decimal_prices_become_micro_units_half_up(value, micros):
    assert to_micros(Decimal(value)) == micros
    assert to_micros(value) == micros


@pytest.mark.parametrize("value", ["-0.000001", "NaN", "Infinity", "1000000.000001", "x", 0.1])
def test_prices_the_proxy_cannot_hold_are_refused(value):
    with pytest.raises(PricingError):
        to_micros(value)


def test_every_price_of_the_shipped_book_is_whole_micro_units(db):
    rows = list(ModelPrice.objects.all())
    assert len(rows) >= 20
    for row in rows:
        for name in ("input_per_1k", "output_per_1k", "per_request"):
            value = getattr(row, name)
            assert Decimal(to_micros(value)) / 10**6 == value, (row.model_id, name)
    haiku = price_payload(HAIKU)
    assert haiku["current"]["input_per_1k"] == 250
    assert haiku["current"]["output_per_1k"] == 1250
    # Empty cache prices are charged as input tokens, as on invoices.
    assert haiku["current"]["cache_read_per_1k"] == haiku["current"]["cache_write_per_1k"] == 250


def test_inference_profile_prefixes_are_one_list_for_invoices_and_the_proxy():
    assert pricing.INFERENCE_PROFILE_PREFIXES is proxy_models.INFERENCE_PROFILE_PREFIXES
    assert pricing.price_model_id(HAIKU_PROFILE) == proxy_models.priced_as(HAIKU_PROFILE) == HAIKU


# --- outbox rows, in the change's transaction -------------------------------------------------


def test_adding_a_price_records_its_outbox_row_in_the_same_transaction(db):
    before = price_rows().count()
    with pytest.raises(RuntimeError), transaction.atomic():
        add_haiku(date(2030, 1, 1), inp="0.0003", out="0.0015")
        (row,) = price_rows().order_by("-id")[:1]
        assert row.customer_id is None and row.payload["model_id"] == HAIKU
        assert row.payload["next"]["input_per_1k"] == 300
        assert row.payload["next"]["effective_from"] == epoch_of(date(2030, 1, 1))
        raise RuntimeError("the change fails after the row was written")
    assert not ModelPrice.objects.filter(effective_from=date(2030, 1, 1)).exists()
    assert price_rows().count() == before  # rolled back together


def test_versions_only_grow(db):
    first = add_haiku(date(2030, 1, 1))
    second = model_price_add(
        model_id="test.other-v1",
        effective_from=JAN_2024,
        input_per_1k=Decimal("0.001"),
        output_per_1k=Decimal("0.002"),
    )
    rows = list(price_rows().order_by("id"))
    assert [r.payload["model_id"] for r in rows[-2:]] == [first.model_id, second.model_id]
    assert rows[-2].version < rows[-1].version == PriceBookVersion.objects.get().version


def test_editing_deleting_and_moving_rows_record_the_models_items(db):
    row = add_haiku(date(2030, 1, 1))
    row.output_per_1k = Decimal("0.002")
    row.save()  # the Django admin edits rows this way
    assert price_rows().order_by("-id").first().payload["next"]["output_per_1k"] == 2000
    row.model_id = "test.moved-v1"
    row.save()
    moved = [r.payload["model_id"] for r in price_rows().order_by("-id")[:2]]
    assert sorted(moved) == sorted([HAIKU, "test.moved-v1"])
    ModelPrice.objects.filter(model_id="test.moved-v1").delete()  # a queryset: no save()
    last = price_rows().order_by("-id").first()
    assert last.payload["model_id"] == "test.moved-v1"
    assert last.payload["current"] is None and last.payload["next"] is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_per_1k": "-0.001"}, "must not be negative"),
        ({"output_per_1k": "NaN"}, "finite"),
        ({"cache_read_per_1k": "0.0000000001"}, "decimal places"),
        ({"model_id": HAIKU_PROFILE}, "inference profile"),
        ({"model_id": "two words"}, "without spaces"),
        ({"effective_from": JAN_2024}, "already has a price"),
    ],
)
def test_the_service_refuses_bad_prices_and_writes_nothing(db, changes, message):
    fields = {
        "model_id": HAIKU,
        "effective_from": date(2030, 1, 1),
        "input_per_1k": "0.00025",
        "output_per_1k": "0.00125",
        **changes,
    }
    before = price_rows().count(), ModelPrice.objects.count()
    with pytest.raises(PricingError, match=message):
        model_price_add(**fields)
    assert (price_rows().count(), ModelPrice.objects.count()) == before


def test_a_price_beyond_the_proxys_limit_is_refused_when_saved(db):
    row = ModelPrice(
        model_id="test.huge-v1",
        effective_from=JAN_2024,
        input_per_1k=Decimal("2000000"),  # fits the column, not the proxy
        output_per_1k=Decimal("-1"),
    )
    with pytest.raises(ValidationError) as error:
        row.full_clean()  # the admin's form
    assert set(error.value.message_dict) == {"input_per_1k", "output_per_1k"}
    with pytest.raises(PricingError, match="proxy"):
        row.save()
    assert not ModelPrice.objects.filter(model_id="test.huge-v1").exists()


# --- delivered, read back by the proxy --------------------------------------------------------


def test_a_new_price_reaches_the_proxy_and_costs_what_was_worked_out_by_hand(ddb):
    add_haiku()
    item = contract.get_price(ddb, HAIKU)
    assert isinstance(item, contract.PriceItem)
    assert item.currency == "USD" and item.next is None
    assert item.current == contract.PriceRates(
        effective_from=epoch_of(JAN_2024),
        input_per_1k=250,
        output_per_1k=1250,
        cache_read_per_1k=250,
        cache_write_per_1k=250,
        per_request=0,
    )
    assert not price_rows().filter(delivered_at__isnull=True).exists()
    reader = prices.PriceReader(ddb)
    for name in (HAIKU, "haiku", "claude-3-haiku", HAIKU_PROFILE):
        price = reader.price_at(name)
        assert price.model_id == HAIKU
        assert prices.cost_micros(price, {"input_tokens": 1000, "output_tokens": 500}) == 875
    assert reader.price_at("claude-3-opus") is None  # not in this (flushed) book


def test_a_scheduled_change_reaches_the_proxy_now_and_switches_at_its_instant(ddb):
    soon = today() + timedelta(days=10)
    add_haiku(today() - timedelta(days=30))
    add_haiku(soon, inp="0.0002", out="0.001")
    item = contract.get_price(ddb, HAIKU)
    assert (item.current.input_per_1k, item.next.input_per_1k) == (250, 200)
    instant = datetime(soon.year, soon.month, soon.day, tzinfo=UTC)
    assert item.next.effective_from == instant.timestamp()
    reader = prices.PriceReader(ddb)
    usage = {"input_tokens": 1000, "output_tokens": 500}
    before = reader.price_at("haiku", now=instant - timedelta(seconds=1))
    after = reader.price_at("haiku", now=instant)
    assert prices.cost_micros(before, usage) == 875
    assert prices.cost_micros(after, usage) == 200 + 500


def test_delivery_is_idempotent_by_version(ddb):
    add_haiku(JAN_2024)
    add_haiku(date(2030, 1, 1), inp="0.0003", out="0.0015")
    first, second = price_rows().order_by("id")
    assert first.version < second.version
    assert contract.get_price(ddb, HAIKU).version == second.version
    # A late or repeated delivery of either row changes nothing.
    price_rows().update(delivered_at=None)
    report = outbox_deliver(kind=SyncOutbox.Kind.PRICE, force=True)
    assert (report.delivered, report.superseded) == (2, 2)
    item = contract.get_price(ddb, HAIKU)
    assert item.version == second.version and item.next.input_per_1k == 300


def test_with_the_broker_down_the_sweeper_delivers_the_price(ddb, monkeypatch):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.deliver_price_outbox, "delay", broker_down)
    add_haiku()
    assert contract.get_price(ddb, HAIKU) is None
    assert price_rows().filter(delivered_at__isnull=True).count() == 1
    assert tasks.sweep_outbox() == 1
    assert contract.get_price(ddb, HAIKU).current.output_per_1k == 1250


def test_a_data_migration_records_its_models_items(ddb):
    # A data migration writes through historical models, which run no save().
    ModelPrice.objects.bulk_create(
        [
            ModelPrice(
                model_id=HAIKU,
                effective_from=JAN_2024,
                input_per_1k=Decimal("0.00025"),
                output_per_1k=Decimal("0.00125"),
            )
        ]
    )
    with transaction.atomic():
        assert outbox_enqueue_prices_in_migration(django_apps, [HAIKU, HAIKU]) == 1
    assert tasks.sweep_outbox() == 1
    assert contract.get_price(ddb, HAIKU).current.input_per_1k == 250


# --- reconciliation ---------------------------------------------------------------------------


def test_reconciliation_puts_back_a_deleted_price_item(ddb):
    add_haiku()
    version = contract.get_price(ddb, HAIKU).version
    ddb.delete_item(TableName=contract.table_names().prices, Key={"model_id": {"S": HAIKU}})
    assert prices.PriceReader(ddb).price_at("haiku") is None

    report = dynamodb_reconcile()
    assert report.price_repairs == [f"price {HAIKU}: missing in DynamoDB"]
    assert report.checked_prices == 1 and report.repairs == []
    assert "1 model prices" in report.summary() and "repaired 0 items and 1" in report.summary()
    item = contract.get_price(ddb, HAIKU)
    assert item.version > version and item.current.input_per_1k == 250
    audit = AuditEvent.objects.get(action="sync.repair", object_type="price")
    assert audit.customer is None and audit.object_id == HAIKU
    assert dynamodb_reconcile().price_repairs == []


def test_reconciliation_rewrites_hostile_items_above_their_version(ddb):
    add_haiku()
    table = contract.table_names().prices
    raw = ddb.get_item(TableName=table, Key={"model_id": {"S": HAIKU}})["Item"]
    raw["version"] = {"N": "50"}
    raw["current"]["M"]["output_per_1k"] = {"N": "-1250"}
    ddb.put_item(TableName=table, Item=raw)
    assert prices.PriceReader(ddb).price_at("haiku") is None  # unpriced, no crash

    (repair,) = dynamodb_reconcile().price_repairs
    assert repair.startswith(f"price {HAIKU}: unreadable in DynamoDB (current.output_per_1k")
    item = contract.get_price(ddb, HAIKU)
    assert item.version > 50 and item.current.output_per_1k == 1250
    assert PriceBookVersion.objects.get().version == item.version

    # A version no conditional put can pass (text): the item is removed and written again.
    raw["version"] = {"S": "999"}
    ddb.put_item(TableName=table, Item=raw)
    assert len(dynamodb_reconcile().price_repairs) == 1
    assert contract.get_price(ddb, HAIKU).current.output_per_1k == 1250
    assert dynamodb_reconcile().price_repairs == []


def test_reconciliation_removes_the_prices_of_models_the_book_does_not_have(ddb):
    contract.put_price(
        ddb,
        contract.PriceItem(
            "test.stray-v1",
            3,
            "USD",
            contract.PriceRates(0, 1, 1, 1, 1),
        ),
    )
    report = dynamodb_reconcile()
    assert report.price_repairs == [
        "price test.stray-v1: not in the price book, its prices removed"
    ]
    item = contract.get_price(ddb, "test.stray-v1")
    assert item.current is None and item.next is None and item.version > 3
    assert prices.PriceReader(ddb).price_at("test.stray-v1") is None
    assert dynamodb_reconcile().price_repairs == []


def test_reconciliation_carries_an_item_forward_once_its_change_took_effect(ddb):
    add_haiku(JAN_2024)
    add_haiku(date(2030, 1, 1), inp="0.0003", out="0.0015")
    client = dynamodb_client()
    later = datetime(2030, 6, 1, tzinfo=UTC)
    # The change took effect and nothing is scheduled after it: the item still says it all.
    assert prices_reconcile(client=client, now=later) == (1, [])
    add_haiku(date(2031, 1, 1), inp="0.0004", out="0.002")
    stored = contract.get_price(ddb, HAIKU)
    assert (stored.current.input_per_1k, stored.next.input_per_1k) == (250, 300)
    _, repairs = prices_reconcile(client=client, now=later)
    assert repairs == [f"price {HAIKU}: differs in next"]
    outbox_deliver(force=True)
    item = contract.get_price(ddb, HAIKU)
    assert (item.current.input_per_1k, item.next.input_per_1k) == (300, 400)
    assert item.next.effective_from == epoch_of(date(2031, 1, 1))


def test_a_dry_run_changes_nothing(ddb):
    add_haiku()
    ddb.delete_item(TableName=contract.table_names().prices, Key={"model_id": {"S": HAIKU}})
    report = dynamodb_reconcile(dry_run=True)
    assert report.price_repairs == [f"price {HAIKU}: missing in DynamoDB"]
    assert contract.get_price(ddb, HAIKU) is None


def test_the_startup_reconcile_fills_the_emulator_from_the_book(ddb, capsys):
    # `make run` runs `customers reconcile` after creating the tables; rows written by a data
    # migration (no save()) reach the proxy this way too.
    ModelPrice.objects.bulk_create(
        [
            ModelPrice(
                model_id=model_id,
                effective_from=JAN_2024,
                input_per_1k=Decimal(inp),
                output_per_1k=Decimal(out),
            )
            for model_id, inp, out in (
                (HAIKU, "0.00025", "0.00125"),
                ("amazon.nova-micro-v1:0", "0.000035", "0.00014"),
                (proxy_models.SANDBOX_MODEL_ID, "0", "0"),
            )
        ]
    )
    call_command("customers", "reconcile")
    out = capsys.readouterr().out
    assert f"repaired price {HAIKU}: missing in DynamoDB" in out
    assert "3 model prices" in out and "and 3 model prices" in out
    reader = prices.PriceReader(ddb)
    assert reader.price_at("nova-micro").input_per_1k == 35
    assert reader.price_at("sandbox").is_free
    assert prices.cost_micros(reader.price_at("haiku"), {"input_tokens": 1000}) == 250


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs a server database")
def test_concurrent_changes_to_one_model_end_on_the_books_item(ddb):
    """Ten prices of one model added at once: every row gets its own version, and the item
    DynamoDB ends with (the highest version) holds the book as it is after all of them."""
    errors = []
    start = threading.Barrier(10)

    def add(days):
        try:
            start.wait(timeout=10)
            add_haiku(today() + timedelta(days=days), inp=f"0.000{days + 10}", out="0.002")
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=add, args=(n,)) for n in range(-5, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    versions = sorted(price_rows().values_list("version", flat=True))
    assert len(set(versions)) == 10
    outbox_deliver(force=True)
    item = contract.get_price(ddb, HAIKU)
    assert item.version == versions[-1]
    expected = price_payload(HAIKU)
    assert asdict(item.current) == expected["current"]  # the row of today: 0.00010 -> 100
    assert asdict(item.next) == expected["next"]
    assert item.current.input_per_1k == 100 and item.next.input_per_1k == 110
