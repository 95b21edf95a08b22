"""The staff price book page: each model's price in force and scheduled changes per 1M tokens,
and a change scheduled from a day on (today or later), asked for first, audited and recorded
for the proxy like any price change. Staff only; hostile input is refused with a message."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.urls import reverse

from billing.models import ModelPrice
from billing.price_book import utc_today
from billing.price_units import per_1k_to_per_million, per_million_to_per_1k, price_text
from billing.pricing import PricingError
from customers.models import AuditEvent, SyncOutbox

pytestmark = pytest.mark.django_db

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"  # in the migrated book: $0.25 / $1.25 per 1M
LIST = reverse("staff:billing_prices")
NEW = reverse("staff:billing_price_new")


def _form(**changes):
    return {
        "model": HAIKU,
        "new_model_id": "",
        "display_name": "",
        "effective_from": (utc_today() + timedelta(days=7)).isoformat(),
        "input_per_1m": "0.3",
        "output_per_1m": "1.5",
        "cache_read_per_1m": "",
        "cache_write_per_1m": "",
        "per_request": "",
        "source_url": "https://aws.amazon.com/bedrock/pricing/",
        "source_seen_on": utc_today().isoformat(),
        "note": "",
        **changes,
    }


def _price_items():
    return SyncOutbox.objects.filter(kind=SyncOutbox.Kind.PRICE).count()


# --- conversions, by hand ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_1m", "per_1k"),
    [
        ("0.25", "0.00025"),  # Claude 3 Haiku input
        ("1.25", "0.00125"),
        ("3", "0.003"),
        ("15", "0.015"),
        ("0.035", "0.000035"),  # Nova Micro input
        ("0.000001", "0.000000001"),  # the finest the book keeps
        ("0", "0"),
        ("999999999", "999999.999"),
    ],
)
def test_per_million_converts_exactly_both_ways(per_1m, per_1k):
    assert per_million_to_per_1k(per_1m, "Input") == D(per_1k)
    assert per_1k_to_per_million(D(per_1k)) == D(per_1m)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.0000001", "more than the 9 decimal places"),
        ("-0.25", "must not be negative"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("1e999", "below"),
        ("abc", "must be a number"),
        (0.25, "as text"),
        (True, "as text"),
    ],
)
def test_per_million_refuses_what_does_not_convert(value, message):
    with pytest.raises(PricingError, match=message):
        per_million_to_per_1k(value, "Input")


def test_prices_read_as_people_write_them():
    assert price_text(D("0.250000000")) == "0.25"
    assert price_text(D("3000.000000")) == "3,000"
    assert price_text(D("0E-9")) == "0"


# --- access -----------------------------------------------------------------------------------


def test_staff_only(client, customer_client):
    for url in (LIST, NEW):
        assert customer_client.get(url).status_code == 403
        assert customer_client.post(url, _form(confirm="1")).status_code == 403
        assert client.get(url).status_code in (302, 403)
    assert not ModelPrice.objects.filter(effective_from__gt=utc_today()).exists()


# --- the list ---------------------------------------------------------------------------------


def test_the_list_shows_prices_per_1m_in_force_and_scheduled(staff_client):
    ModelPrice.objects.create(
        model_id=HAIKU,
        display_name="Claude 3 Haiku",
        effective_from=utc_today() + timedelta(days=30),
        input_per_1k=D("0.0003"),
        output_per_1k=D("0.0015"),
        source_url="https://aws.amazon.com/bedrock/pricing/",
    )
    page = staff_client.get(LIST).content.decode()
    assert "https://aws.amazon.com/bedrock/pricing/" in page and "not on blogs" in page
    assert "per 1M tokens in USD" in page
    haiku = page[page.index(HAIKU) :]
    row_in_force = haiku[: haiku.index("</tr>")]
    assert ">0.25<" in row_in_force and ">1.25<" in row_in_force and "In force" in row_in_force
    scheduled = haiku[haiku.index("</tr>") :]
    scheduled = scheduled[: scheduled.index("</tr>", 6)]
    assert "Scheduled" in scheduled and ">0.3<" in scheduled and ">1.5<" in scheduled
    # A seeded row read on a blog is marked to be checked on AWS's page.
    assert "not AWS&#x27;s pricing page" in page or "not AWS's pricing page" in page


# --- scheduling a change ----------------------------------------------------------------------


def test_a_change_is_confirmed_then_saved_audited_and_sent(staff_client, staff_user):
    items, audits = _price_items(), AuditEvent.objects.count()
    ask = staff_client.post(NEW, _form(cache_read_per_1m="0.03", per_request="0.0004"))
    assert ask.status_code == 200
    body = ask.content.decode()
    assert "Schedule price" in body and 'name="confirm"' in body
    assert "Input: 0.3 USD per 1M tokens" in body and "Cache write: as input tokens" in body
    assert not ModelPrice.objects.filter(effective_from__gt=utc_today()).exists()
    assert (_price_items(), AuditEvent.objects.count()) == (items, audits)

    done = staff_client.post(
        NEW, _form(cache_read_per_1m="0.03", per_request="0.0004", confirm="1")
    )
    assert done.status_code == 302 and done["Location"] == LIST
    row = ModelPrice.objects.get(model_id=HAIKU, effective_from__gt=utc_today())
    # 0.3 and 1.5 per 1M are 0.0003 and 0.0015 per 1,000 tokens, exactly.
    assert (row.input_per_1k, row.output_per_1k) == (D("0.0003"), D("0.0015"))
    assert row.cache_read_per_1k == D("0.00003") and row.cache_write_per_1k is None
    assert row.per_request == D("0.0004")
    assert row.display_name == "Claude 3 Haiku"  # the catalog's name when none is typed
    assert row.source_url == "https://aws.amazon.com/bedrock/pricing/"
    # Delivered like any price change: the model's item, with the change as its `next`.
    assert _price_items() == items + 1
    item = SyncOutbox.objects.filter(kind=SyncOutbox.Kind.PRICE).order_by("-id").first()
    assert item.payload["model_id"] == HAIKU
    assert item.payload["next"]["input_per_1k"] == 300  # micro-units per 1,000 tokens
    event = AuditEvent.objects.get(action="price.schedule")
    assert event.actor == staff_user and event.object_id == HAIKU and event.customer is None
    assert event.before["input_per_1m"] == "0.25" and event.after["input_per_1m"] == "0.3"
    assert event.after["effective_from"] == row.effective_from.isoformat()
    log = staff_client.get(reverse("staff:audit_log")).content.decode()
    assert "Price scheduled" in log and "Input per 1M tokens" in log


def test_a_new_model_id_and_today(staff_client):
    today = utc_today().isoformat()
    fields = _form(
        model="",
        new_model_id="acme.frontier-large-v2:0",
        display_name="Frontier Large",
        effective_from=today,
        input_per_1m="2",
        output_per_1m="8",
        confirm="1",
    )
    assert staff_client.post(NEW, fields).status_code == 302
    row = ModelPrice.objects.get(model_id="acme.frontier-large-v2:0")
    assert row.effective_from == utc_today()
    assert (row.input_per_1k, row.output_per_1k) == (D("0.002"), D("0.008"))
    # It is now a catalog model (customers can be allowed it).
    form = staff_client.get(NEW).content.decode()
    assert 'value="acme.frontier-large-v2:0"' in form


def test_the_form_is_filled_from_a_models_price(staff_client):
    page = staff_client.get(NEW, {"model": HAIKU}).content.decode()
    assert 'value="0.25"' in page and 'value="1.25"' in page
    for junk in ("\x00", "x" * 5000, "nope", "us." + HAIKU):
        assert staff_client.get(NEW, {"model": junk}).status_code == 200


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"effective_from": "2001-01-01"}, "effective_from", "is in the past"),
        ({"effective_from": "0001-01-01"}, "effective_from", "is in the past"),
        ({"effective_from": "yesterday"}, "effective_from", "Enter a valid date"),
        ({"input_per_1m": "-1"}, "input_per_1m", "must not be negative"),
        ({"input_per_1m": "NaN"}, "input_per_1m", "enter a price such as 0.25"),
        ({"input_per_1m": "Infinity"}, "input_per_1m", "enter a price such as 0.25"),
        ({"input_per_1m": "1e999"}, "input_per_1m", "enter a price such as 0.25"),
        ({"input_per_1m": "1_000"}, "input_per_1m", "enter a price such as 0.25"),
        ({"input_per_1m": "١٢"}, "input_per_1m", "enter a price such as 0.25"),
        ({"input_per_1m": "0x10"}, "input_per_1m", "enter a price such as 0.25"),
        ({"input_per_1m": "1,5"}, "input_per_1m", "enter a price such as 0.25"),
        ({"input_per_1m": "0.25\x00"}, "input_per_1m", "control character"),
        ({"output_per_1m": "\x1b[31m1"}, "output_per_1m", "control character"),
        ({"output_per_1m": ""}, "output_per_1m", "required"),
        ({"output_per_1m": "0.0000001"}, "output_per_1m", "more than the 9 decimal places"),
        ({"output_per_1m": "1000000001"}, "output_per_1m", "the proxy's limit"),
        ({"output_per_1m": "9" * 40}, "output_per_1m", "below"),
        ({"cache_read_per_1m": "-0.1"}, "cache_read_per_1m", "must not be negative"),
        ({"cache_write_per_1m": "0.00000005"}, "cache_write_per_1m", "decimal places"),
        ({"per_request": "0.0000000001"}, "per_request", "decimal places"),
        ({"per_request": "-1"}, "per_request", "must not be negative"),
        ({"model": "no.such-model"}, "model", "Pick a model of the list"),
        ({"model": "\x00"}, "model", "Pick a model of the list"),
        ({"model": "", "new_model_id": ""}, "model", "Pick a model"),
        ({"new_model_id": "other.model-v1"}, "new_model_id", "not both"),
        ({"model": "", "new_model_id": "us." + HAIKU}, None, "inference profile"),
        ({"model": "", "new_model_id": "two words"}, None, "without spaces"),
        ({"model": "", "new_model_id": "bad\x00id"}, "new_model_id", "Null characters"),
        ({"model": "", "new_model_id": "bad\x07id"}, "new_model_id", "control character"),
        ({"model": "", "new_model_id": "<script>x</script>"}, None, "letters, digits"),
        ({"model": "", "new_model_id": "m" * 201}, "new_model_id", "at most 200"),
        ({"display_name": "Haiku\x1b[2J"}, "display_name", "control character"),
        ({"source_url": "javascript:alert(1)"}, None, "must be a web address"),
        ({"source_url": "https://aws.amazon.com/\x00"}, "source_url", "Null characters"),
        ({"source_seen_on": "9999-12-31"}, "source_seen_on", "cannot be in the future"),
        ({"note": "line\x00"}, "note", "Null characters"),
        ({"note": "ok\r\nbut\x1b"}, "note", "control character"),
    ],
)
def test_hostile_input_is_refused_with_a_message(staff_client, changes, field, message):
    before = ModelPrice.objects.count(), _price_items(), AuditEvent.objects.count()
    for extra in ({}, {"confirm": "1"}):  # neither the first POST nor a forged confirmation
        response = staff_client.post(NEW, _form(**changes, **extra))
        assert response.status_code == 200
        form = response.context["form"]
        errors = form.errors.get(field or "__all__", [])
        assert any(message in e for e in errors), form.errors
        assert "\x00" not in response.content.decode() and "\x1b" not in response.content.decode()
    assert (ModelPrice.objects.count(), _price_items(), AuditEvent.objects.count()) == before


def test_a_second_price_the_same_day_is_refused_before_confirming(staff_client):
    assert staff_client.post(NEW, _form(confirm="1")).status_code == 302
    again = staff_client.post(NEW, _form(input_per_1m="0.4"))
    assert again.status_code == 200
    assert "already has a price from" in again.content.decode()
    assert ModelPrice.objects.filter(model_id=HAIKU, effective_from__gt=utc_today()).count() == 1


def test_wrong_types_and_an_empty_post(staff_client):
    empty = staff_client.post(NEW, {})
    assert empty.status_code == 200 and empty.context["form"].errors
    many = staff_client.post(NEW, {**_form(), "input_per_1m": ["0.3", "junk"]})
    assert many.status_code == 200  # the last value: junk
    assert "input_per_1m" in many.context["form"].errors


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"effective_from": utc_today() - timedelta(days=1)}, "is in the past"),
        ({"effective_from": "2030-01-01"}, "Give the day"),
        ({"model_id": "bad\x00id"}, "letters, digits"),
        ({"model_id": 123}, "1 to 200 characters"),
        ({"model_id": "us." + HAIKU}, "inference profile"),
        ({"display_name": "Haiku\x00"}, "control character"),
        ({"display_name": "x" * 201}, "at most 200"),
        ({"note": "fine\nbut\x1b"}, "control character"),
        ({"source_url": "ftp://example.com/prices"}, "web address"),
        ({"source_seen_on": utc_today() + timedelta(days=1)}, "cannot be in the future"),
        ({"input_per_1k": 0.0003}, "as a string"),
        ({"input_per_1k": "NaN"}, "finite"),
        ({"output_per_1k": "-0.1"}, "must not be negative"),
        ({"output_per_1k": "2000000"}, "proxy"),
    ],
)
def test_the_service_refuses_what_the_page_refuses(changes, message):
    from billing.services import model_price_schedule

    fields = {
        "model_id": HAIKU,
        "effective_from": utc_today() + timedelta(days=7),
        "input_per_1k": D("0.0003"),
        "output_per_1k": D("0.0015"),
        **changes,
    }
    before = ModelPrice.objects.count(), _price_items(), AuditEvent.objects.count()
    with pytest.raises(PricingError, match=message):
        model_price_schedule(**fields)
    assert (ModelPrice.objects.count(), _price_items(), AuditEvent.objects.count()) == before


def test_checking_a_change_writes_nothing(staff_user):
    from billing.services import model_price_schedule

    row = model_price_schedule(
        model_id=HAIKU,
        effective_from=utc_today(),
        input_per_1k=D("0.0003"),
        output_per_1k=D("0.0015"),
        by=staff_user,
        check_only=True,
    )
    assert row.pk is None
    assert not AuditEvent.objects.filter(action="price.schedule").exists()
