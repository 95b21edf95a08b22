"""Prepaid credit at the proxy: the `granted_micros` of each prepaid customer's CREDIT counter
item (proxy/contract.py, "Prepaid credit"). docs/billing.md, "Prepaid credit at the edge".

The proxy ADDs what calls cost to the item's `used_micros` (all time) and `used#YYYY-MM` (per
month), and refuses a call when `granted_micros - used_micros` is 0 or less. The portal SETs
`granted_micros` only, as an absolute figure:

    granted = wallet balance (usable grants, in micro-units, exactly)
            + the credit spend of every month already invoiced (`CreditPeriodSpend`)

Usage of a month the wallet has not paid yet is counted only at the proxy; once the month is
invoiced, the invoice takes its cost out of the wallet, and the month's spend as read at that
moment is added to `granted`, so the credit available is right before and after.

Every push (`credit_push`) locks the customer's BillingProfile row, bumps its `credit_version`,
computes the figure from committed data and, after commit, writes it with `put_credit`, which
DynamoDB keeps only if the version is newer: a late or repeated push changes nothing, and of two
concurrent pushes the later one computed after the earlier one committed. A failed write is
logged and left to `credit_reconcile` (every minute), which also applies expiries (a grant stops
counting the day after its `expires_on`, with no event of its own).
"""

import logging
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, Sum
from django.utils import timezone

from core.aws import aws_client
from customers.models import Customer
from proxy import contract

from .models import BillingProfile, CreditGrant, CreditPeriodSpend, Invoice

logger = logging.getLogger(__name__)

# Pushes run right after the commit of the change, in the request or task that made it: short
# timeouts, and the reconciler for whatever does not land.
_PUSH_CLIENT_CONFIG = Config(
    connect_timeout=2, read_timeout=3, retries={"max_attempts": 2, "mode": "standard"}
)
# Pages read the live figure once, quickly; when it fails they say so and show the wallet.
_PAGE_CLIENT_CONFIG = Config(
    connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 1, "mode": "standard"}
)
AWS_ERRORS = (BotoCoreError, ClientError)
VERSION_LIMIT = 2**63 - 1  # credit_version is a signed 64-bit column
# A month's spend the portal records: at most what a signed 64-bit column holds. A figure
# outside [0, limit] (a hand edit) is not recorded; the month stays to be read again.
SPEND_LIMIT = 2**63 - 1
BATCH = 100  # keys per BatchGetItem, its limit
# A live figure beyond a trillion units of the currency (10**18 micro-units) is a hand edit, not
# credit: shown as unavailable rather than as a number no page or API field can hold.
LIVE_LIMIT = 10**18
CENT = Decimal("0.01")


def push_client():
    return aws_client("dynamodb", config=_PUSH_CLIENT_CONFIG)


def page_client():
    return aws_client("dynamodb", config=_PAGE_CLIENT_CONFIG)


# --- amounts ------------------------------------------------------------------------------


def to_micros(amount: Decimal) -> int:
    """An amount of the currency (a wallet balance: whole cents) as micro-units, exactly."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError(f"Not a finite Decimal amount: {amount!r}")
    with localcontext() as ctx:
        ctx.prec = 80  # every amount a column holds, with no rounding
        micros = amount * contract.MICROS_PER_UNIT
    if micros != micros.to_integral_value():
        raise ValueError(f"{amount} is not a whole number of micro-units")
    return int(micros)


def from_micros(micros: int) -> Decimal:
    """Micro-units as an exact amount of the currency (12340000 -> 12.34)."""
    with localcontext() as ctx:
        ctx.prec = 80
        return Decimal(int(micros)).scaleb(-6)


def money_text(amount: Decimal, *, rounding=ROUND_FLOOR) -> str:
    """ "1,234.50 USD". Credit available is rounded down to the cent (never shown as more than
    it is), usage not yet invoiced up."""
    with localcontext() as ctx:
        ctx.prec = 80
        cents = amount.quantize(CENT, rounding=rounding)
    return f"{cents:,} {settings.BILLING_CURRENCY}"


# --- the figure -----------------------------------------------------------------------------


def _wallets(customer_ids, on_day: date) -> dict:
    """{customer_id: usable balance}, as selectors.credit_balance computes it, for many."""
    rows = (
        CreditGrant.objects.filter(customer_id__in=customer_ids, remaining__gt=0)
        .filter(Q(expires_on__isnull=True) | Q(expires_on__gte=on_day))
        .values("customer_id")
        .order_by()
        .annotate(balance=Sum("remaining"))
    )
    return {row["customer_id"]: row["balance"].quantize(CENT) for row in rows}


def _invoiced_spend(customer_ids) -> dict:
    rows = (
        CreditPeriodSpend.objects.filter(customer_id__in=customer_ids)
        .values("customer_id")
        .order_by()
        .annotate(spent=Sum("used_micros"))
    )
    return {row["customer_id"]: int(row["spent"]) for row in rows}


def granted_by_customer(customer_ids, on_day: date | None = None) -> dict:
    """{customer_id: granted_micros}: wallet (micro-units) + spend of the invoiced months."""
    on_day = on_day or timezone.localdate()
    customer_ids = list(customer_ids)
    wallets = _wallets(customer_ids, on_day)
    spent = _invoiced_spend(customer_ids)
    return {pk: to_micros(wallets.get(pk, Decimal(0))) + spent.get(pk, 0) for pk in customer_ids}


def granted_micros(customer_id, on_day: date | None = None) -> int:
    return granted_by_customer([customer_id], on_day)[customer_id]


def invoiced_spend_micros(customer_id) -> int:
    return _invoiced_spend([customer_id]).get(customer_id, 0)


def credit_tracked(customer_id) -> bool:
    """Prepaid now, or sent a figure before (its CREDIT item may hold months to record)."""
    return (
        Customer.objects.filter(pk=customer_id, prepaid=True).exists()
        or BillingProfile.objects.filter(customer_id=customer_id, credit_version__gt=0).exists()
    )


# --- pushes ---------------------------------------------------------------------------------


@dataclass
class CreditPush:
    customer_id: str
    version: int
    granted_micros: int
    landed: bool | None = None  # after commit: True, False (a newer one was there), None (failed)


def _describe(error: Exception) -> str:
    """The kind of failure, for the log: no request, signature or figure in it."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "ClientError"))
    return type(error).__name__


def credit_deliver(push: CreditPush, client=None) -> None:
    try:
        push.landed = contract.put_credit(
            client or push_client(), push.customer_id, push.granted_micros, push.version
        )
    except AWS_ERRORS as exc:
        push.landed = None
        logger.warning(
            "prepaid credit of customer %s (version %s) did not reach the proxy (%s); the "
            "credit reconciler sends it again",
            push.customer_id,
            push.version,
            _describe(exc),
        )


def credit_figure_take(
    *, customer_id, at_least_version: int = 0, on_day: date | None = None
) -> CreditPush:
    """In one transaction: lock the customer's billing profile, take the next `credit_version`
    (at least `at_least_version`) and compute the credit granted from committed data. Of two
    concurrent takes, the later waits for the lock, so it computes after the earlier one
    committed and carries the higher version."""
    from .wallet import billing_profile_get

    at_least_version = int(at_least_version)
    with transaction.atomic():
        billing_profile_get(customer_id=customer_id)
        profile = BillingProfile.objects.select_for_update().get(customer_id=customer_id)
        version = max(profile.credit_version + 1, at_least_version)
        if version > VERSION_LIMIT:
            raise ValueError(f"credit version {version} is beyond {VERSION_LIMIT}")
        BillingProfile.objects.filter(pk=profile.pk).update(credit_version=version)
        return CreditPush(
            customer_id=str(customer_id),
            version=version,
            granted_micros=granted_micros(customer_id, on_day),
        )


def credit_push(*, customer_id, at_least_version: int = 0, client=None) -> CreditPush:
    """Send the customer's credit granted to the proxy: the figure is taken in its own
    transaction (credit_figure_take), then written with `put_credit` once that commits. A
    failed put is logged and left to the reconciler: the wallet change that asked for the push
    has committed whatever happens here."""
    push = credit_figure_take(customer_id=customer_id, at_least_version=at_least_version)
    transaction.on_commit(lambda: credit_deliver(push, client))
    return push


def _push_if_tracked(customer_id) -> None:
    try:
        if credit_tracked(customer_id):
            credit_push(customer_id=customer_id)
    except Exception:  # never fail the change that committed: the reconciler repairs
        logger.exception("prepaid credit push for customer %s failed", customer_id)


def credit_push_on_commit(*, customer_id) -> None:
    """After the current transaction commits (at once outside one), push the customer's credit
    if it is prepaid (or was). Call it from every change of the wallet or of invoiced months."""
    transaction.on_commit(lambda: _push_if_tracked(customer_id))


# --- months invoiced ------------------------------------------------------------------------


def _record_spend(customer_id, period_start: date, used, invoice_id=None) -> bool:
    """Record a month's spend once (a savepoint: a concurrent recorder wins, nothing breaks)."""
    if not isinstance(used, int) or not 0 <= used <= SPEND_LIMIT:
        logger.warning(
            "the proxy's credit spend of customer %s for %s is not a usable figure; the month "
            "is left to record later",
            customer_id,
            f"{period_start:%Y-%m}",
        )
        return False
    try:
        with transaction.atomic():
            CreditPeriodSpend.objects.create(
                customer_id=customer_id,
                period_start=period_start,
                used_micros=used,
                invoice_id=invoice_id,
            )
    except IntegrityError:
        return False
    return True


def period_spend_record(*, invoice: Invoice, client=None) -> bool:
    """Inside the issue transaction of a month's first invoice: record what the month's calls
    cost at the proxy (the CREDIT item's `used#YYYY-MM`, read now), so the push after commit
    adds it to the credit granted as the wallet pays for it. Only for customers the proxy
    counts credit for; a failed read is logged and the month recorded by the reconciler."""
    if invoice.kind != Invoice.Kind.INVOICE or not credit_tracked(invoice.customer_id):
        return False
    period_start = invoice.period_start.replace(day=1)
    if CreditPeriodSpend.objects.filter(
        customer_id=invoice.customer_id, period_start=period_start
    ).exists():
        return False
    try:
        state = contract.get_credit(client or push_client(), str(invoice.customer_id))
    except (*AWS_ERRORS, ValueError) as exc:
        logger.warning(
            "could not read the prepaid credit spend of customer %s for %s (%s); the credit "
            "reconciler records it",
            invoice.customer_id,
            f"{period_start:%Y-%m}",
            _describe(exc),
        )
        return False
    used = state.used_by_month.get(f"{period_start:%Y-%m}", 0)
    return _record_spend(invoice.customer_id, period_start, used, invoice.pk)


def unrecorded_periods(customer_ids=None):
    """(customer_id, period_start) of months invoiced (an invoice issued, paid or void) for
    customers whose credit the proxy counts, with no spend recorded yet."""
    recorded = CreditPeriodSpend.objects.filter(
        customer_id=OuterRef("customer_id"), period_start=OuterRef("period_start")
    )
    tracked = Q(customer__prepaid=True) | Q(customer__billing_profile__credit_version__gt=0)
    invoices = (
        Invoice.objects.filter(kind=Invoice.Kind.INVOICE)
        .exclude(status=Invoice.Status.DRAFT)
        .filter(tracked)
        .filter(~Exists(recorded))
    )
    if customer_ids is not None:
        invoices = invoices.filter(customer_id__in=customer_ids)
    return invoices.values_list("customer_id", "period_start").distinct().order_by()


# --- the live figure, for pages -------------------------------------------------------------


@dataclass(frozen=True)
class LiveCredit:
    """A prepaid customer's credit: the wallet (PostgreSQL) and, when the proxy's CREDIT item
    could be read, what is available now and the usage not yet invoiced."""

    wallet: Decimal
    available: Decimal | None = None
    not_invoiced: Decimal | None = None

    @property
    def is_live(self) -> bool:
        return self.available is not None

    @property
    def wallet_text(self) -> str:
        return money_text(self.wallet)

    @property
    def available_text(self) -> str:
        return money_text(self.available) if self.available is not None else ""

    @property
    def not_invoiced_text(self) -> str:
        if self.not_invoiced is None:
            return ""
        return money_text(self.not_invoiced, rounding=ROUND_CEILING)


def credit_live(customer: Customer, *, client=None) -> LiveCredit | None:
    """None unless the customer is prepaid. The CREDIT item is read once, strongly consistent;
    when it cannot be read (DynamoDB unreachable, a value that is not a whole number) the
    wallet alone is returned and the page says the live figure is unavailable."""
    from .selectors import credit_balance

    if not getattr(customer, "prepaid", False):
        return None
    wallet = credit_balance(customer.pk)
    try:
        state = contract.get_credit(client or page_client(), str(customer.pk))
    except (*AWS_ERRORS, ValueError) as exc:
        logger.warning(
            "live prepaid credit of customer %s unavailable (%s)", customer.pk, _describe(exc)
        )
        return LiveCredit(wallet=wallet)
    not_invoiced = state.used_micros - invoiced_spend_micros(customer.pk)
    if max(abs(state.available_micros), abs(not_invoiced)) > LIVE_LIMIT:
        logger.warning("the CREDIT item of customer %s holds an impossible figure", customer.pk)
        return LiveCredit(wallet=wallet)
    return LiveCredit(
        wallet=wallet,
        available=from_micros(state.available_micros),
        not_invoiced=from_micros(not_invoiced),
    )
