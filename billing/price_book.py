"""The price book: a model's price from a day on, and the staff page that schedules changes.

Writes go through `model_price_add` (every path) or `model_price_schedule` (staff: today or
later only, audited), both saving through ModelPrice.save(), which records the model's price
item for the proxy in the same transaction (billing/price_sync.py). Prices are kept per 1,000
tokens; the staff page shows and takes them per 1M tokens (billing/price_units.py).
"""

from dataclasses import dataclass
from datetime import UTC, date
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from core.text import unprintable
from customers.audit import audit_record
from customers.validators import MODEL_NAME_RE
from proxy.models import is_free

from . import price_sync
from .models import ModelPrice
from .price_units import per_1k_to_per_million, price_start_problem
from .pricing import PricingError, plan_number, price_model_id

# Where prices are read: Amazon's own page, not blogs or resellers' lists.
AWS_PRICING_URL = "https://aws.amazon.com/bedrock/pricing/"
AWS_PRICING_HOST = "aws.amazon.com"


def utc_today() -> date:
    return timezone.now().astimezone(UTC).date()


# --- Reads ---------------------------------------------------------------------------------


@dataclass
class ModelPrices:
    """One model of the book: the row in force on a day, the changes after it, and how many
    rows came before."""

    model_id: str
    name: str
    current: ModelPrice | None
    scheduled: list[ModelPrice]
    earlier: int


def price_book_by_model(*, today: date) -> list[ModelPrices]:
    """Every model of the book with its price in force `today` and its scheduled changes,
    sorted by name (the book is small: one query)."""
    grouped: dict[str, list[ModelPrice]] = {}
    for row in ModelPrice.objects.order_by("model_id", "effective_from"):
        grouped.setdefault(row.model_id, []).append(row)
    models = []
    for model_id, rows in grouped.items():
        past = [r for r in rows if r.effective_from <= today]
        named = [r.display_name for r in reversed(rows) if r.display_name]
        models.append(
            ModelPrices(
                model_id=model_id,
                name=named[0] if named else model_id,
                current=past[-1] if past else None,
                scheduled=[r for r in rows if r.effective_from > today],
                earlier=max(0, len(past) - 1),
            )
        )
    return sorted(models, key=lambda m: (m.name.lower(), m.model_id))


def from_aws(row: ModelPrice) -> bool:
    """Whether a row's source is AWS's own pricing page (the seeded book has a few that are
    not: the page shows them to be checked there). The portal's free sandbox models are not
    sold by AWS and count as such."""
    from urllib.parse import urlsplit

    return is_free(row.model_id) or urlsplit(row.source_url or "").hostname == AWS_PRICING_HOST


def price_snapshot(row: ModelPrice | None) -> dict | None:
    """A row as the audit trail keeps it: prices per 1M tokens (per request for the request
    price) as exact text, never a float."""
    if row is None:
        return None

    def text(value):
        return None if value is None else str(per_1k_to_per_million(value).normalize())

    return {
        "model_id": row.model_id,
        "display_name": row.display_name,
        "effective_from": row.effective_from.isoformat(),
        "input_per_1m": text(row.input_per_1k),
        "output_per_1m": text(row.output_per_1k),
        "cache_read_per_1m": text(row.cache_read_per_1k),
        "cache_write_per_1m": text(row.cache_write_per_1k),
        "per_request": str(Decimal(row.per_request).normalize()),
        "source_url": row.source_url,
    }


# --- Writes --------------------------------------------------------------------------------


@transaction.atomic
def model_price_schedule(
    *,
    model_id: str,
    effective_from: date,
    input_per_1k,
    output_per_1k,
    cache_read_per_1k=None,
    cache_write_per_1k=None,
    per_request=Decimal(0),
    display_name: str = "",
    source_url: str = "",
    source_seen_on: date | None = None,
    note: str = "",
    by=None,
    ip: str | None = None,
    today: date | None = None,
    check_only: bool = False,
) -> ModelPrice:
    """A price change staff make: from today (UTC) or later, never a past day (its usage is
    priced already), audited as `price.schedule` with the price it replaces on that day. Saved
    through `model_price_add`'s checks, so its price item reaches the proxy like any change.
    With `check_only`, the row is checked and returned unsaved (the confirmation step)."""
    today = today or utc_today()
    if not isinstance(effective_from, date):
        raise PricingError("Give the day the price takes effect.")
    if problem := price_start_problem(effective_from, today):
        raise PricingError(problem)
    if source_seen_on is not None and source_seen_on > today:
        raise PricingError("The day the price was read cannot be in the future.")
    fields = {
        "model_id": model_id,
        "effective_from": effective_from,
        "input_per_1k": input_per_1k,
        "output_per_1k": output_per_1k,
        "cache_read_per_1k": cache_read_per_1k,
        "cache_write_per_1k": cache_write_per_1k,
        "per_request": per_request,
        "display_name": display_name,
        "source_url": source_url,
        "source_seen_on": source_seen_on,
        "note": note,
    }
    row = model_price_build(**fields)
    if check_only:
        return row
    replaced = (
        ModelPrice.objects.filter(model_id=row.model_id, effective_from__lt=row.effective_from)
        .order_by("-effective_from")
        .first()
    )
    row.save()

    audit_record(
        customer=None,
        actor=by,
        action="price.schedule",
        object_type="price",
        object_id=row.model_id[:64],
        before=price_snapshot(replaced),
        after=price_snapshot(row),
        ip=ip,
    )
    return row


@transaction.atomic
def model_price_add(
    *,
    model_id: str,
    effective_from: date,
    input_per_1k,
    output_per_1k,
    cache_read_per_1k=None,
    cache_write_per_1k=None,
    per_request=Decimal(0),
    display_name: str = "",
    source_url: str = "",
    source_seen_on: date | None = None,
    note: str = "",
) -> ModelPrice:
    """A model's price from a day on. A price change is a new row (rows are not edited): the
    row in force on a day prices that day's usage. The proxy's price item of the model is
    recorded with it, in this transaction (ModelPrice.save, billing/price_sync.py), so a change
    dated in the future reaches the proxy now and takes effect there at 00:00 UTC that day.
    Staff schedule changes with `model_price_schedule`, which also refuses past days and
    audits."""
    row = model_price_build(
        model_id=model_id,
        effective_from=effective_from,
        input_per_1k=input_per_1k,
        output_per_1k=output_per_1k,
        cache_read_per_1k=cache_read_per_1k,
        cache_write_per_1k=cache_write_per_1k,
        per_request=per_request,
        display_name=display_name,
        source_url=source_url,
        source_seen_on=source_seen_on,
        note=note,
    )
    row.save()
    return row


def model_price_build(
    *,
    model_id: str,
    effective_from: date,
    input_per_1k,
    output_per_1k,
    cache_read_per_1k=None,
    cache_write_per_1k=None,
    per_request=Decimal(0),
    display_name: str = "",
    source_url: str = "",
    source_seen_on: date | None = None,
    note: str = "",
) -> ModelPrice:
    """The row `model_price_add` would save, checked and not saved (PricingError otherwise): a
    Bedrock model id (not an inference profile's), prices the plan rule and the proxy accept,
    printable text, an http(s) source and no other price of the model that day."""
    model_id = _model_id(model_id)
    row = ModelPrice(
        model_id=model_id,
        effective_from=effective_from,
        input_per_1k=_unit_price(input_per_1k, "Input price"),
        output_per_1k=_unit_price(output_per_1k, "Output price"),
        cache_read_per_1k=None
        if cache_read_per_1k is None
        else _unit_price(cache_read_per_1k, "Cache read price"),
        cache_write_per_1k=None
        if cache_write_per_1k is None
        else _unit_price(cache_write_per_1k, "Cache write price"),
        per_request=_unit_price(per_request, "Per-request price"),
        display_name=_printable((display_name or "").strip(), "The display name", 200),
        source_url=_source_url(source_url),
        source_seen_on=source_seen_on,
        note=_printable(note or "", "The note", 2000, lines=True),
    )
    if ModelPrice.objects.filter(model_id=model_id, effective_from=effective_from).exists():
        raise PricingError(f"{model_id} already has a price from {effective_from}.")
    return row


def _model_id(model_id) -> str:
    """A Bedrock model id as the API and the allowed-models lists take them
    (customers.validators.MODEL_NAME_RE), never an inference profile id."""

    model_id = (model_id if isinstance(model_id, str) else "").strip()
    if not model_id or len(model_id) > 200 or any(c.isspace() for c in model_id):
        raise PricingError("A model id is 1 to 200 characters without spaces.")
    if not MODEL_NAME_RE.match(model_id):
        raise PricingError(
            "A model id is letters, digits and . _ : / @ -, starting with a letter or digit,"
            " such as anthropic.claude-3-haiku-20240307-v1:0."
        )
    if price_model_id(model_id) != model_id:
        raise PricingError(
            f"{model_id} is an inference profile: price the model it routes to,"
            f" {price_model_id(model_id)}."
        )
    return model_id


def _printable(text: str, what: str, most: int, *, lines: bool = False) -> str:
    """Text a person typed, stored only without control characters (a note may have lines)."""

    if not isinstance(text, str):
        raise PricingError(f"{what} must be text.")
    checked = text.replace("\r\n", "\n").replace("\n", "") if lines else text
    if problem := unprintable(checked):
        raise PricingError(f"{what} cannot contain {problem}.")
    if len(text) > most:
        raise PricingError(f"{what} is at most {most:,} characters.")
    return text


def _source_url(url) -> str:
    from django.core.exceptions import ValidationError
    from django.core.validators import URLValidator

    url = _printable((url or "").strip(), "The source URL", 500)
    if not url:
        return ""
    try:
        URLValidator(schemes=["https", "http"])(url)
    except ValidationError:
        raise PricingError(
            "The source URL must be a web address, such as https://aws.amazon.com/bedrock/pricing/."
        ) from None
    return url


def _unit_price(value, what: str) -> Decimal:
    """A price of the book: the plan rule's (finite, not negative, at most 9 decimal places,
    below 10^9), and one the proxy can be given (price_sync.to_micros)."""
    number = plan_number(value, what)
    price_sync.to_micros(number)
    return number
