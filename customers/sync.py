"""Delivery of the outbox to the proxy's DynamoDB tables, through `proxy.contract`.

Each synced entity (a customer, a token) carries a monotonic `sync_version`. A change bumps it
and writes a `SyncOutbox` row with the item's fields at that version, in the same transaction.
Delivery is idempotent: the contract's puts are conditional on the version, so a replayed or
late row never overwrites a newer item, and DynamoDB items are keyed, so nothing duplicates.

A change that takes access away (a token revoked, a customer suspended or closed) does not wait
for a worker: right after its commit, the process that made it writes the item to DynamoDB
itself (`_write_access_changes`, short timeouts, one attempt). The Celery task and the sweeper
stay the fallback when that write fails; since delivery is idempotent, racing a worker is safe.
"""

import logging
import random
import threading
from dataclasses import dataclass, field
from datetime import timedelta

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.aws import aws_client
from proxy import contract

from .models import Customer, SyncOutbox, Token
from .money import budget_micros

logger = logging.getLogger(__name__)

_SYNC_CLIENT_CONFIG = Config(
    connect_timeout=3, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"}
)


# Writes made inside a request: fail fast (one attempt, short timeouts) and leave the rest to
# the worker, rather than hold the page.
_ACCESS_WRITE_CLIENT_CONFIG = Config(
    connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 1, "mode": "standard"}
)
# At most this many rows are written in-process per commit (e.g. a bulk suspension); customer
# rows go first, since a customer's status stops all of its tokens at once.
ACCESS_WRITE_LIMIT = 50


def dynamodb_client():
    return aws_client("dynamodb", config=_SYNC_CLIENT_CONFIG)


def access_write_client():
    return aws_client("dynamodb", config=_ACCESS_WRITE_CLIENT_CONFIG)


def _epoch(value) -> int | None:
    return int(value.timestamp()) if value is not None else None


def customer_payload(customer: Customer) -> dict:
    """The customer item's fields, except `version` (kept on the outbox row)."""
    return {
        "customer_id": str(customer.id),
        "status": customer.status,
        "name": customer.name,
        "daily_request_limit": customer.daily_request_limit,
        "monthly_token_quota": customer.monthly_token_quota,
        "rpm_limit": customer.rpm_limit,
        "tpm_limit": customer.tpm_limit,
        "allowed_models": list(customer.allowed_models or []),
        "ip_allowlist": list(customer.ip_allowlist or []),
        "default_model_params": dict(customer.default_model_params or {}),
        "updated_at": (customer.updated_at or timezone.now()).isoformat(),
        "monthly_budget_micros": budget_micros(customer.monthly_budget),
        "prepaid": bool(customer.prepaid),
        "counter_shards": customer.counter_shards,
    }


def token_payload(token: Token) -> dict:
    """The token item's fields, except `version` and `token_hash` (read from the token row)."""
    return {
        "token_id": str(token.id),
        "customer_id": str(token.customer_id),
        "display_prefix": token.display_prefix,
        "status": "revoked" if token.status == Token.Status.REVOKED else "active",
        "expires_at": _epoch(token.effective_expires_at),
        "created_at": _epoch(token.created_at),
        "grace_ends_at": _epoch(token.grace_until),
        "daily_request_limit": token.daily_request_limit,
        "rpm_limit": token.rpm_limit,
        "monthly_token_quota": token.monthly_token_quota,
        "tpm_limit": token.tpm_limit,
        "allowed_models": list(token.allowed_models or []),
        "monthly_budget_micros": budget_micros(token.monthly_budget),
    }


def _queue_delivery(customer_id, countdown: float | None = None) -> None:
    from .tasks import deliver_customer_outbox

    try:
        if countdown is None:
            deliver_customer_outbox.delay(str(customer_id))
        else:
            deliver_customer_outbox.apply_async((str(customer_id),), countdown=countdown)
    except Exception:  # the broker is down: the row waits for the sweeper
        logger.warning("could not queue outbox delivery for customer %s", customer_id)


def takes_access_away(row: SyncOutbox) -> bool:
    """The item this row writes refuses requests: a revoked token, a customer not active.

    Decided on the row itself, so every path that revokes, suspends or closes (staff and
    customer pages, the API, the `customers` command, bulk actions, billing's suspension at
    zero balance, reconciliation) gets the in-process write."""
    if row.kind == SyncOutbox.Kind.TOKEN:
        return row.payload.get("status") == "revoked"
    return row.payload.get("status") != Customer.Status.ACTIVE


def _on_commit_deliver(row: SyncOutbox) -> None:
    if takes_access_away(row):
        _access_writes_pending().append(row.pk)
        transaction.on_commit(_write_access_changes)
    else:
        transaction.on_commit(lambda: _queue_delivery(row.customer_id))


def outbox_enqueue_customer(*, customer: Customer) -> SyncOutbox:
    """Bump the customer's version and record the change. Call inside the change's transaction."""
    Customer.objects.filter(pk=customer.pk).update(sync_version=F("sync_version") + 1)
    customer.refresh_from_db(fields=["sync_version", "updated_at"])
    row = SyncOutbox.objects.create(
        customer=customer,
        kind=SyncOutbox.Kind.CUSTOMER,
        version=customer.sync_version,
        payload=customer_payload(customer),
    )
    _on_commit_deliver(row)
    return row


def outbox_enqueue_token(*, token: Token) -> SyncOutbox:
    Token.objects.filter(pk=token.pk).update(sync_version=F("sync_version") + 1)
    token.refresh_from_db(fields=["sync_version"])
    row = SyncOutbox.objects.create(
        customer_id=token.customer_id,
        token=token,
        kind=SyncOutbox.Kind.TOKEN,
        version=token.sync_version,
        payload=token_payload(token),
    )
    _on_commit_deliver(row)
    return row


def customer_item(payload: dict, version: int) -> contract.CustomerItem:
    return contract.CustomerItem(version=version, **payload)


def token_item(token_hash: str, payload: dict, version: int) -> contract.TokenItem:
    return contract.TokenItem(token_hash=token_hash, version=version, **payload)


def _apply(client, row: SyncOutbox) -> bool:
    if row.kind == SyncOutbox.Kind.PRICE:
        return contract.put_price(client, price_item(row.payload, row.version))
    if row.kind == SyncOutbox.Kind.CUSTOMER:
        return contract.put_customer(client, customer_item(row.payload, row.version))
    return contract.put_token(client, token_item(row.token.token_hash, row.payload, row.version))


def backoff_delay(attempts: int) -> timedelta:
    """Exponential backoff with jitter: base * 2^(n-1), capped."""
    base = settings.SYNC_RETRY_BASE_SECONDS
    seconds = min(settings.SYNC_RETRY_MAX_SECONDS, base * 2 ** max(0, attempts - 1))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.0))  # noqa: S311 (jitter)


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return f"{err.get('Code', 'ClientError')}: {err.get('Message', '')}"[:500]
    return f"{type(error).__name__}: {error}"[:500]


@dataclass
class DeliveryReport:
    delivered: int = 0
    superseded: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    retry_in: float = 0.0


def outbox_deliver(
    *, customer_id=None, kind=None, limit: int = 500, force: bool = False, client=None
):
    """Deliver pending rows, oldest first. `force` ignores the backoff schedule; `kind` keeps
    rows of that kind only (the price book's: SyncOutbox.Kind.PRICE)."""
    now = timezone.now()
    rows = SyncOutbox.objects.filter(delivered_at__isnull=True)
    if not force:
        rows = rows.filter(next_attempt_at__lte=now)
    if customer_id is not None:
        rows = rows.filter(customer_id=customer_id)
    if kind is not None:
        rows = rows.filter(kind=kind)
    rows = list(rows.select_related("token").order_by("id")[:limit])
    report = DeliveryReport()
    if not rows:
        return report
    client = client or dynamodb_client()
    for index, row in enumerate(rows):
        try:
            applied = _apply(client, row)
        except (BotoCoreError, ClientError) as error:
            message = _describe(error)
            # Unreachable endpoint: every row after this one would fail the same way.
            unreachable = isinstance(error, BotoCoreError)
            failed_rows = rows[index:] if unreachable else [row]
            for failed in failed_rows:
                _record_failure(failed, message)
            report.failed += len(failed_rows)
            report.errors.append(message)
            logger.warning("outbox delivery failed (%s rows): %s", len(failed_rows), message)
            if unreachable:
                break
            continue
        SyncOutbox.objects.filter(pk=row.pk).update(
            delivered_at=timezone.now(), applied=applied, last_error=""
        )
        report.delivered += 1
        report.superseded += 0 if applied else 1
    if report.failed:
        pending = SyncOutbox.objects.filter(delivered_at__isnull=True)
        if customer_id is not None:
            pending = pending.filter(customer_id=customer_id)
        if kind is not None:
            pending = pending.filter(kind=kind)
        soonest = pending.order_by("next_attempt_at").values_list("next_attempt_at", flat=True)
        first = soonest.first()
        report.retry_in = max(1.0, (first - timezone.now()).total_seconds()) if first else 1.0
    return report


def _record_failure(row: SyncOutbox, message: str):
    """Count the attempt and schedule the next one; returns when it is due."""
    attempts = row.attempts + 1
    due = timezone.now() + backoff_delay(attempts)
    # A row another process delivered meanwhile keeps its clean record.
    SyncOutbox.objects.filter(pk=row.pk, delivered_at__isnull=True).update(
        attempts=attempts, last_error=message, next_attempt_at=due
    )
    return due


# Rows that take access away, written by this thread's transaction and not delivered yet. Every
# such row registers `_write_access_changes` on commit; the first call of a commit takes them
# all, the others find the list empty. Ids left by a rolled-back transaction match no row.
_access_writes = threading.local()


def _access_writes_pending() -> list[int]:
    if not hasattr(_access_writes, "rows"):
        _access_writes.rows = []
    return _access_writes.rows


def _write_access_changes() -> None:
    ids, _access_writes.rows = _access_writes_pending(), []
    if not ids:
        return
    try:
        access_changes_write(row_ids=ids)
    except Exception:  # never fail the request that made the change: the worker takes over
        logger.exception("in-process outbox write failed; leaving it to the worker")
        try:
            rows = SyncOutbox.objects.filter(pk__in=ids, delivered_at__isnull=True)
            for customer_id in set(rows.values_list("customer_id", flat=True)):
                _queue_delivery(customer_id)
        except Exception:  # the database is gone too: the sweeper finds the rows later
            logger.exception("could not queue the outbox delivery either")


def access_changes_write(*, row_ids, client=None) -> DeliveryReport:
    """Write these outbox rows to DynamoDB in this process, at most ACCESS_WRITE_LIMIT of them,
    customer rows first. A row that fails keeps its backoff schedule and is queued for the
    worker when due; rows beyond the limit are queued at once. The sweeper catches the rest."""
    rows = SyncOutbox.objects.filter(pk__in=row_ids, delivered_at__isnull=True)
    rows = sorted(rows.select_related("token"), key=lambda r: (r.kind != r.Kind.CUSTOMER, r.pk))
    now_rows, later = rows[:ACCESS_WRITE_LIMIT], rows[ACCESS_WRITE_LIMIT:]
    report = DeliveryReport()
    retry_at: dict = {}  # customer id -> when its failed rows are due again
    unreachable = None
    for row in now_rows:
        if unreachable is None:
            try:
                applied = _apply(client or (client := access_write_client()), row)
            except (BotoCoreError, ClientError) as error:
                message = _describe(error)
                # Unreachable endpoint: the rows after this one would wait for the same timeout.
                if isinstance(error, BotoCoreError):
                    unreachable = message
            else:
                SyncOutbox.objects.filter(pk=row.pk, delivered_at__isnull=True).update(
                    delivered_at=timezone.now(), applied=applied, last_error=""
                )
                report.delivered += 1
                report.superseded += 0 if applied else 1
                continue
        else:
            message = unreachable
        due = _record_failure(row, message)
        retry_at[row.customer_id] = min(due, retry_at.get(row.customer_id, due))
        report.failed += 1
        if message not in report.errors:
            report.errors.append(message)
    if report.failed:
        logger.warning(
            "in-process outbox write failed (%s rows), left to the worker: %s",
            report.failed,
            "; ".join(report.errors),
        )
    for customer_id, due in retry_at.items():
        _queue_delivery(customer_id, countdown=max(1.0, (due - timezone.now()).total_seconds()))
    for customer_id in {row.customer_id for row in later} - set(retry_at):
        _queue_delivery(customer_id)
    return report


def outbox_purge_delivered(*, older_than_days: int = 30) -> int:
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = SyncOutbox.objects.filter(delivered_at__lt=cutoff).delete()
    return deleted


def price_item(payload: dict, version: int) -> contract.PriceItem:
    """A price row's payload (billing.price_sync.price_payload) as the contract's item."""

    def rates(fields):
        return contract.PriceRates(**fields) if fields else None

    return contract.PriceItem(
        model_id=payload["model_id"],
        version=version,
        currency=payload["currency"],
        current=rates(payload.get("current")),
        next=rates(payload.get("next")),
        updated_at=payload.get("updated_at", ""),
    )
