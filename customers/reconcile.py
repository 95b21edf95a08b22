"""Compare PostgreSQL (the source of truth) with DynamoDB and repair any drift.

Pending outbox rows are delivered first; then every customer and token item is compared with
what PostgreSQL says it should be. A missing or different item is re-written through the
outbox at a fresh version (above whatever DynamoDB holds, so the conditional put wins); an item
DynamoDB holds but PostgreSQL does not know is disabled (tokens revoked, customers closed),
because a token nobody can see in the portal must not keep working. The proxy's price items
are compared with the price book the same way: billing owns those, and registers its check with
`price_check_register` (billing/apps.py), since customers does not import billing.
"""

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from proxy import contract

from .audit import audit_record
from .models import Customer, Token
from .sync import (
    customer_payload,
    dynamodb_client,
    outbox_deliver,
    outbox_enqueue_customer,
    outbox_enqueue_token,
    token_payload,
)

# (client=, dry_run=) -> (prices checked, repairs): the proxy's price items against the price
# book, set by billing when it is installed.
_price_check = None


def price_check_register(function) -> None:
    """Set (or, with None, remove) the check of the proxy's price items."""
    global _price_check
    _price_check = function


CUSTOMER_COMPARED = [
    "status",
    "name",
    "daily_request_limit",
    "monthly_token_quota",
    "rpm_limit",
    "tpm_limit",
    "allowed_models",
    "ip_allowlist",
    "default_model_params",
    "monthly_budget_micros",
    "prepaid",
    "counter_shards",
]
TOKEN_COMPARED = [
    "token_id",
    "customer_id",
    "display_prefix",
    "status",
    "expires_at",
    "daily_request_limit",
    "rpm_limit",
    "monthly_token_quota",
    "tpm_limit",
    "allowed_models",
    "monthly_budget_micros",
]


@dataclass
class ReconcileReport:
    checked_customers: int = 0
    checked_tokens: int = 0
    checked_prices: int = 0
    repairs: list[str] = field(default_factory=list)  # customers and tokens
    price_repairs: list[str] = field(default_factory=list)  # the proxy's price items
    delivered_pending: int = 0
    still_pending: int = 0

    def summary(self) -> str:
        return (
            f"checked {self.checked_customers} customers, {self.checked_tokens} tokens and "
            f"{self.checked_prices} model prices, "
            f"delivered {self.delivered_pending} pending changes, "
            f"repaired {len(self.repairs)} items and {len(self.price_repairs)} model prices, "
            f"{self.still_pending} still pending"
        )


def _normalise(value):
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if hasattr(value, "as_integer_ratio") and not isinstance(value, bool):
        # DynamoDB answers Decimal, the portal's JSON fields float: compare both exactly.
        return int(value) if int(value) == value else Decimal(str(value))
    return value


def _differences(expected: dict, actual, names) -> list[str]:
    return [
        name
        for name in names
        if _normalise(expected.get(name)) != _normalise(getattr(actual, name))
    ]


def _bump_past(model, pk, remote_version: int) -> None:
    # DynamoDB is ahead (a restored database, say): jump past it so our put is not refused.
    model.objects.filter(pk=pk, sync_version__lt=remote_version).update(sync_version=remote_version)


def dynamodb_reconcile(*, dry_run: bool = False, client=None) -> ReconcileReport:
    client = client or dynamodb_client()
    report = ReconcileReport()
    if not dry_run:
        report.delivered_pending = outbox_deliver(
            force=True, limit=100_000, client=client
        ).delivered
    remote_customers = {item.customer_id: item for item in contract.iter_customers(client)}
    remote_tokens = {item.token_hash: item for item in contract.iter_tokens(client)}

    for customer in Customer.objects.order_by("pk").iterator(chunk_size=1000):
        report.checked_customers += 1
        item = remote_customers.pop(str(customer.pk), None)
        expected = customer_payload(customer)
        if item is None:
            problem = "missing in DynamoDB"
        else:
            diff = _differences(expected, item, CUSTOMER_COMPARED)
            problem = f"differs in {', '.join(diff)}" if diff else None
        if problem:
            report.repairs.append(f"customer {customer.pk} ({customer.name}): {problem}")
            if not dry_run:
                _repair_customer(customer, item, problem)

    now = timezone.now()
    tokens = Token.objects.select_related("customer").order_by("pk")
    for token in tokens.iterator(chunk_size=1000):
        report.checked_tokens += 1
        item = remote_tokens.pop(token.token_hash, None)
        expected = token_payload(token)
        if item is None and token.state(now) in ("expired", "revoked"):
            # DynamoDB's TTL may drop dead tokens' items; an unknown token is refused anyway.
            continue
        if item is None:
            problem = "missing in DynamoDB"
        else:
            diff = _differences(expected, item, TOKEN_COMPARED)
            problem = f"differs in {', '.join(diff)}" if diff else None
        if problem:
            report.repairs.append(f"token {token.pk} ({token.masked}): {problem}")
            if not dry_run:
                _repair_token(token, item, problem)

    for item in remote_customers.values():
        if item.status != Customer.Status.CLOSED:
            report.repairs.append(f"customer {item.customer_id}: unknown to the portal, closed")
            if not dry_run:
                contract.put_customer(
                    client, dataclasses.replace(item, status="closed", version=item.version + 1)
                )
    for item in remote_tokens.values():
        if item.status != "revoked":
            # The hash stays out of the report: the token id names it.
            report.repairs.append(f"token {item.token_id}: unknown to the portal, revoked")
            if not dry_run:
                contract.put_token(
                    client, dataclasses.replace(item, status="revoked", version=item.version + 1)
                )

    if _price_check is not None:
        report.checked_prices, report.price_repairs = _price_check(client=client, dry_run=dry_run)

    if not dry_run and (report.repairs or report.price_repairs):
        report.delivered_pending += outbox_deliver(
            force=True, limit=100_000, client=client
        ).delivered
    from .models import SyncOutbox

    report.still_pending = SyncOutbox.objects.filter(delivered_at__isnull=True).count()
    return report


def _repair_customer(customer: Customer, item, problem: str) -> None:
    with transaction.atomic():
        if item is not None:
            _bump_past(Customer, customer.pk, item.version)
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        outbox_enqueue_customer(customer=locked)
        audit_record(
            customer=locked,
            actor=None,
            action="sync.repair",
            object_type="customer",
            object_id=locked.pk,
            after={"problem": problem},
            source="reconciliation",
        )


def _repair_token(token: Token, item, problem: str) -> None:
    with transaction.atomic():
        if item is not None:
            _bump_past(Token, token.pk, item.version)
        locked = Token.objects.select_for_update().get(pk=token.pk)
        outbox_enqueue_token(token=locked)
        audit_record(
            customer=locked.customer,
            actor=None,
            action="sync.repair",
            object_type="token",
            object_id=locked.pk,
            after={"problem": problem, "token": locked.masked},
            source="reconciliation",
        )
