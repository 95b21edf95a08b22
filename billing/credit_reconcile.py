"""The prepaid credit reconciler (beat, every minute: billing.tasks.credit_reconcile).

For every prepaid customer, in batches of 100 (one BatchGetItem each), it compares the proxy's
CREDIT item with the portal and pushes (billing.credit_sync.credit_push) when they differ: an
item missing, one whose version is behind the portal's (a push that did not land) or ahead of
it (a database restored from an older copy: the push goes above it), or whose credit granted is
not the figure the portal computes today (a grant that expired, a change written around the
services). On the way it records the spend of invoiced months that the issue could not read,
and sends the low-balance alert of prepaid customers on the figure the proxy enforces. One
customer that fails is counted and logged; the others go on.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from botocore.exceptions import BotoCoreError
from django.utils import timezone

from customers.models import Customer
from proxy import contract

from .credit_sync import (
    AWS_ERRORS,
    BATCH,
    VERSION_LIMIT,
    _describe,
    _record_spend,
    credit_deliver,
    credit_figure_take,
    from_micros,
    granted_by_customer,
    push_client,
    unrecorded_periods,
)
from .models import BillingProfile, CreditGrant

logger = logging.getLogger(__name__)
# Months recorded per run at most (a first run after many months of invoices); the rest the
# next minute.
PERIODS_PER_RUN = 5000
UNPROCESSED_ROUNDS = 5  # BatchGetItem retries of throttled keys before leaving them for later


@dataclass
class ReconcileReport:
    checked: int = 0
    in_step: int = 0
    pushed: int = 0
    failed: int = 0
    periods_recorded: int = 0
    alerts: int = 0
    errors: list[str] = field(default_factory=list)


def read_credit_items(client, customer_ids) -> tuple[dict, set]:
    """({customer_id: raw item}, ids not read): one strongly consistent BatchGetItem per 100
    customers; a customer without an item is absent from the first and the second."""
    table = contract.table_names().usage_counters
    by_pk = {contract.counter_pk(str(pk)): pk for pk in customer_ids}
    found: dict = {}
    request: dict[str, dict[str, Any]] = {  # BatchGetItem's RequestItems
        table: {
            "Keys": [
                {
                    contract.COUNTER_PK: {"S": pk},
                    contract.COUNTER_SK: {"S": contract.CREDIT_SK},
                }
                for pk in by_pk
            ],
            "ConsistentRead": True,
        }
    }
    for _ in range(UNPROCESSED_ROUNDS):
        answer = client.batch_get_item(RequestItems=request)
        for raw in answer.get("Responses", {}).get(table, []):
            pk = raw.get(contract.COUNTER_PK, {}).get("S")
            if pk in by_pk:
                found[by_pk[pk]] = raw
        request = answer.get("UnprocessedKeys") or {}
        if not request:
            break
    unread = {
        by_pk[key[contract.COUNTER_PK]["S"]] for key in request.get(table, {}).get("Keys", [])
    }
    return found, unread


def _record_months(customer_id, months: list[date], raw: dict | None, report) -> None:
    try:
        used_by_month = contract.read_credit(raw).used_by_month if raw else {}
    except ValueError:
        logger.warning("the CREDIT item of customer %s is not readable", customer_id)
        return
    for period_start in months:
        used = used_by_month.get(f"{period_start:%Y-%m}", 0)
        if _record_spend(customer_id, period_start, used):
            report.periods_recorded += 1


def _stored_version(raw: dict | None) -> int | None:
    if raw is None:
        return 0
    try:
        return int(raw.get(contract.CREDIT_VERSION, {}).get("N") or 0)
    except ValueError:
        return None


def _why_push(raw, ours: int, expected: int) -> tuple[str, int]:
    """(why the item must be pushed, or "", the least version the push must take)."""
    if raw is None:
        return "no CREDIT item", 0
    stored = _stored_version(raw)
    if stored is None:
        return "CREDIT item unreadable", 0
    try:
        state = contract.read_credit(raw)
    except ValueError:
        return "CREDIT item unreadable", stored + 1
    if state.version > ours:
        return "the item's version is ahead of the portal's", state.version + 1
    if state.version < ours:
        return "the last push did not land", 0
    if state.granted_micros != expected:
        return "credit granted differs", 0
    return "", 0


def _reconcile_one(client, customer_id, raw, expected, profile, has_wallet, on_day, report) -> None:
    from .wallet import low_balance_alert_live

    ours = profile["credit_version"] if profile else 0
    why, at_least = _why_push(raw, ours, expected)
    granted = expected
    if why:
        if at_least > VERSION_LIMIT:
            raise ValueError(f"the CREDIT item's version is beyond {VERSION_LIMIT}")
        # The reconciler runs outside any transaction: the figure taken has committed when
        # it is sent, right away.
        push = credit_figure_take(customer_id=customer_id, at_least_version=at_least, on_day=on_day)
        credit_deliver(push, client)
        if push.landed is None:
            raise RuntimeError(f"{why}; the push did not land")
        logger.info("prepaid credit of customer %s pushed again: %s", customer_id, why)
        report.pushed += 1
        granted = push.granted_micros
    else:
        report.in_step += 1
    if not has_wallet or profile is None or profile["low_balance_notified"]:
        return
    try:
        used = contract.read_credit(raw).used_micros if raw else 0
    except ValueError:
        return
    available = from_micros(granted - used)
    if available < profile["low_balance_threshold"]:
        report.alerts += low_balance_alert_live(customer_id=customer_id, available=available)


def _reconcile_batch(client, ids, months, on_day, report) -> None:
    raws, unread = read_credit_items(client, ids)
    for customer_id in ids:
        if months.get(customer_id) and customer_id not in unread:
            _record_months(customer_id, months[customer_id], raws.get(customer_id), report)
    expected = granted_by_customer(ids, on_day)
    profiles = {
        row["customer_id"]: row
        for row in BillingProfile.objects.filter(customer_id__in=ids).values(
            "customer_id", "credit_version", "low_balance_threshold", "low_balance_notified"
        )
    }
    wallets = set(
        CreditGrant.objects.filter(customer_id__in=ids)
        .values_list("customer_id", flat=True)
        .distinct()
        .order_by()
    )
    for customer_id in ids:
        report.checked += 1
        if customer_id in unread:
            report.failed += 1
            continue
        try:
            _reconcile_one(
                client,
                customer_id,
                raws.get(customer_id),
                expected[customer_id],
                profiles.get(customer_id),
                customer_id in wallets,
                on_day,
                report,
            )
        except Exception as exc:  # one customer never stops the others
            report.failed += 1
            detail = _describe(exc) if isinstance(exc, AWS_ERRORS) else str(exc)
            message = f"customer {customer_id}: {detail}"
            report.errors.append(message[:300])
            logger.warning("prepaid credit reconciliation: %s", message)


def credit_reconcile(
    *, client=None, on_day: date | None = None, batch: int = BATCH
) -> ReconcileReport:
    """Check every prepaid customer's CREDIT item (and record invoiced months still missing
    their spend), pushing what differs. Safe to run twice at once: pushes are versioned."""
    client = client or push_client()
    on_day = on_day or timezone.localdate()
    report = ReconcileReport()
    months: dict = defaultdict(list)
    for customer_id, period_start in unrecorded_periods()[:PERIODS_PER_RUN]:
        months[customer_id].append(period_start)
    prepaid = Customer.objects.filter(prepaid=True).values_list("pk", flat=True)
    ids = sorted({*prepaid, *months}, key=str)
    step = max(1, min(batch, BATCH))
    for start in range(0, len(ids), step):
        chunk = ids[start : start + step]
        try:
            _reconcile_batch(client, chunk, months, on_day, report)
        except AWS_ERRORS as exc:
            report.failed += len(chunk)
            report.errors.append(f"reading CREDIT items: {_describe(exc)}")
            logger.warning(
                "prepaid credit reconciliation could not read DynamoDB: %s", _describe(exc)
            )
            if isinstance(exc, BotoCoreError):  # unreachable: the other batches would wait too
                report.failed += len(ids) - start - len(chunk)
                break
    if report.pushed or report.failed:
        logger.info(
            "prepaid credit reconciliation: %s checked, %s pushed, %s failed",
            report.checked,
            report.pushed,
            report.failed,
        )
    return report


def credit_reconcile_summary(report: ReconcileReport) -> dict:
    return {
        "checked": report.checked,
        "in_step": report.in_step,
        "pushed": report.pushed,
        "failed": report.failed,
        "periods_recorded": report.periods_recorded,
        "alerts": report.alerts,
        "errors": report.errors[:20],
    }
