"""The price book's copy at the proxy: one price item per model (proxy/contract.py PriceItem),
delivered through the sync outbox like customers and tokens.

A change to a model's rows records, in the same transaction, an outbox row of kind "price" with
the model's item as the book says at that moment: the price in force now and the next scheduled
change. ModelPrice.save() and delete() do it (so the `model_price_add` service, the Django
admin and anything else that saves through the model); a data migration, whose historical
models run no save(), calls `outbox_enqueue_prices_in_migration`. The version comes from one
counter row (PriceBookVersion) locked while the row is written: versions only grow, and of two
concurrent changes the later one reads the book after the earlier one committed. The delivery
task (customers.tasks.deliver_price_outbox, queued on commit) and the sweeper write the item
with contract.put_price, conditional on the version. Reconciliation (`prices_reconcile`, part
of `manage.py customers reconcile`) compares every item with the book, rewrites what differs
or is missing, and carries an item forward once its next change has taken effect.

Money at the proxy is integer micro-units of BILLING_CURRENCY. **Rounding rule**: a decimal
price (per 1,000 tokens, or per request) becomes micro-units with ROUND_HALF_UP to the whole
micro-unit (`to_micros`): $0.00025 is 250, $0.0000175 is 18, $0.0000174 is 17. Every price of
the book as shipped is a whole number of micro-units, so nothing is rounded there. A price that
is negative, not finite, or PRICE_MICROS_LIMIT micro-units or more cannot be represented and is
refused when it is saved. Empty cache prices are the input price, as invoices charge them.
"""

import calendar
import decimal
import logging
from dataclasses import asdict
from datetime import UTC, date
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from customers.audit import audit_record
from customers.models import SyncOutbox
from customers.sync import price_item
from customers.tasks import deliver_price_outbox
from proxy import contract

from .pricing import PricingError

logger = logging.getLogger(__name__)

MICRO = Decimal(1).scaleb(-6)
PRICE_FIELDS = (
    "input_per_1k",
    "output_per_1k",
    "cache_read_per_1k",
    "cache_write_per_1k",
    "per_request",
)


def to_micros(value) -> int:
    """A decimal amount of the currency as whole micro-units, ROUND_HALF_UP (see above)."""
    if isinstance(value, float):
        raise PricingError("Money must be Decimal or str, never float.")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except decimal.InvalidOperation:
        raise PricingError(f"Not a number: {value!r}") from None
    if not number.is_finite() or number < 0:
        raise PricingError(f"A price must be a finite number of at least 0, not {value}.")
    micros = int((number / MICRO).quantize(Decimal(1), rounding=decimal.ROUND_HALF_UP))
    if micros > contract.PRICE_MICROS_LIMIT:
        limit = Decimal(contract.PRICE_MICROS_LIMIT) * MICRO
        raise PricingError(f"A price must be at most {limit:,} (the proxy's limit), not {value}.")
    return micros


def price_problems(row) -> dict[str, str]:
    """What keeps a price row from reaching the proxy, by field (empty: nothing)."""
    problems = {}
    for name in PRICE_FIELDS:
        value = getattr(row, name)
        if value is None and name.startswith("cache_"):
            continue
        try:
            to_micros(Decimal(0) if value is None else value)
        except PricingError as exc:
            problems[name] = str(exc)
    return problems


def epoch_of(day: date) -> int:
    """A price book day's start, 00:00 UTC, in epoch seconds: when its price takes effect."""
    return calendar.timegm((day.year, day.month, day.day, 0, 0, 0))


def rates_payload(row) -> dict:
    """A ModelPrice row as the item's rates (micro-units; empty cache prices = input)."""
    input_price = row.input_per_1k
    return {
        "effective_from": epoch_of(row.effective_from),
        "input_per_1k": to_micros(input_price),
        "output_per_1k": to_micros(row.output_per_1k),
        "cache_read_per_1k": to_micros(
            input_price if row.cache_read_per_1k is None else row.cache_read_per_1k
        ),
        "cache_write_per_1k": to_micros(
            input_price if row.cache_write_per_1k is None else row.cache_write_per_1k
        ),
        "per_request": to_micros(row.per_request or 0),
    }


def currency() -> str:
    return str(settings.BILLING_CURRENCY).strip().upper()


def price_payload(model_id: str, *, now=None, rows=None, price_model=None) -> dict:
    """The price item of `model_id` as the book says at `now`, without its version: the row in
    force (the newest whose day has begun, UTC) and the first one after it. `rows`: the model's
    rows when the caller has read them; `price_model`: a migration's historical ModelPrice."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    if rows is None:
        if price_model is None:
            from .models import ModelPrice

            price_model = ModelPrice
        rows = price_model.objects.filter(model_id=model_id)
    rows = sorted(rows, key=lambda r: r.effective_from)
    past = [r for r in rows if r.effective_from <= today]
    future = [r for r in rows if r.effective_from > today]
    return {
        "model_id": model_id,
        "currency": currency(),
        "current": rates_payload(past[-1]) if past else None,
        "next": rates_payload(future[0]) if future else None,
        "updated_at": now.isoformat(),
    }


def _checked(payload: dict, version: int) -> dict:
    """The payload, once the contract has accepted it as an item (what delivery will write)."""

    try:
        contract.price_attributes(price_item(payload, version))
    except ValueError as exc:
        raise PricingError(f"The proxy cannot be given this price: {exc}.") from None
    return payload


def _next_version(counter_model, at_least: int = 0) -> int:
    counter_model.objects.get_or_create(pk=1)
    counter = counter_model.objects.select_for_update().get(pk=1)
    counter.version = max(counter.version, at_least) + 1
    counter.save(update_fields=["version"])
    return counter.version


def _queue_delivery() -> None:
    try:
        deliver_price_outbox.delay()
    except Exception:  # the broker is down: the row waits for the sweeper
        logger.warning("could not queue the price outbox delivery")


def outbox_enqueue_price(*, model_id: str, at_least_version: int = 0, now=None):
    """Record the price item of `model_id` at the next version (above `at_least_version`), in
    the caller's transaction; its delivery is queued on commit. PricingError if a price of the
    model cannot be represented at the proxy (the transaction is then rolled back)."""

    from .models import PriceBookVersion

    with transaction.atomic():
        version = _next_version(PriceBookVersion, at_least_version)
        # Read after the lock: a concurrent change to the same model has committed by now.
        payload = _checked(price_payload(model_id, now=now), version)
        row = SyncOutbox.objects.create(
            customer=None, kind=SyncOutbox.Kind.PRICE, version=version, payload=payload
        )
        transaction.on_commit(_queue_delivery)
    return row


def outbox_enqueue_prices_in_migration(apps, model_ids) -> int:
    """For a data migration that changes the price book (its RunPython, with its `apps`): the
    outbox rows of these models, in the migration's transaction; the sweeper delivers them.
    The migration depends on ("billing", "0011_price_book_version") and on the customers
    migration that lets outbox rows have no customer."""
    price_model = apps.get_model("billing", "ModelPrice")
    counter_model = apps.get_model("billing", "PriceBookVersion")
    outbox = apps.get_model("customers", "SyncOutbox")
    count = 0
    for model_id in sorted(set(model_ids)):
        version = _next_version(counter_model)
        payload = _checked(price_payload(model_id, price_model=price_model), version)
        outbox.objects.create(customer=None, kind="price", version=version, payload=payload)
        count += 1
    return count


# --- reconciliation ------------------------------------------------------------------------


def _differences(payload: dict, item: contract.PriceItem, now) -> list[str]:
    """Where the stored item and the book disagree from `now` on. An item whose next change has
    taken effect reads as that change in force and none after it."""
    current, upcoming = item.current, item.next
    if upcoming is not None and upcoming.effective_from <= now.timestamp():
        current, upcoming = upcoming, None
    stored = {
        "currency": item.currency,
        "current": asdict(current) if current else None,
        "next": asdict(upcoming) if upcoming else None,
    }
    return [name for name in ("currency", "current", "next") if payload[name] != stored[name]]


def prices_reconcile(*, client, dry_run: bool = False, now=None) -> tuple[int, list[str]]:
    """Compare every model of the book with its price item and repair what differs: a missing,
    different or unreadable item is written again through the outbox at a version above the
    stored one; an item of a model the book no longer has is replaced by one without prices.
    Returns (models checked, one line per repair)."""
    from .models import ModelPrice

    now = now or timezone.now()
    rows: dict[str, list] = {}
    for row in ModelPrice.objects.order_by("model_id", "effective_from"):
        rows.setdefault(row.model_id, []).append(row)
    remote = {item.model_id: item for item in contract.iter_prices(client)}
    repairs = []
    for model_id, model_rows in rows.items():
        item = remote.pop(model_id, None)
        try:
            payload = price_payload(model_id, now=now, rows=model_rows)
        except PricingError as exc:  # stored before the rule, or written around it
            repairs.append(f"price {model_id}: cannot be given to the proxy: {exc}")
            continue
        problem: str | None
        if item is None:
            problem = "missing in DynamoDB"
        elif isinstance(item, contract.UnreadablePriceItem):
            problem = f"unreadable in DynamoDB ({item.problem})"
        else:
            diff = _differences(payload, item, now)
            problem = f"differs in {', '.join(diff)}" if diff else None
        if problem:
            repairs.append(f"price {model_id}: {problem}")
            if not dry_run:
                _repair(client, model_id, item, problem, now)
    for model_id, item in sorted(remote.items()):
        if isinstance(item, contract.PriceItem) and item.current is None and item.next is None:
            continue  # already says "no price"
        problem = "not in the price book, its prices removed"
        repairs.append(f"price {model_id}: {problem}")
        if not dry_run:
            _repair(client, model_id, item, problem, now)
    return len(rows), repairs


def _repair(client, model_id: str, item, problem: str, now) -> None:
    at_least = 0
    if item is not None and item.version is not None:
        at_least = item.version
    elif item is not None:  # no version a conditional put could pass: start again
        contract.delete_price(client, model_id)
    with transaction.atomic():
        outbox_enqueue_price(model_id=model_id, at_least_version=at_least, now=now)
        audit_record(
            customer=None,
            actor=None,
            action="sync.repair",
            object_type="price",
            object_id=model_id[:64],
            after={"model_id": model_id, "problem": problem[:500]},
            source="reconciliation",
        )
