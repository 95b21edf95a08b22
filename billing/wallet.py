"""Prepaid credit wallet: grants in, invoice consumption out, low-balance alert, suspension.

Called from services (inside their transactions); the public entry points are re-exported by
billing.services.
"""

from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from customers.models import Customer
from customers.services import customer_suspend

from .credit_sync import credit_push_on_commit
from .models import MONEY, BillingProfile, CreditApplication, CreditGrant, Invoice
from .pricing import PricingError, to_decimal
from .selectors import credit_balance, usable_grants

# The largest grant an amount column holds (MONEY: 12 digits before the point).
GRANT_MAX = Decimal(10) ** (MONEY["max_digits"] - MONEY["decimal_places"]) - Decimal("0.01")


def billing_profile_get(*, customer_id) -> BillingProfile:
    profile, _ = BillingProfile.objects.get_or_create(
        customer_id=customer_id,
        defaults={"low_balance_threshold": to_decimal(settings.BILLING_LOW_BALANCE_THRESHOLD)},
    )
    return profile


@transaction.atomic
def credit_grant(
    *,
    customer: Customer,
    amount: Decimal,
    kind: str = CreditGrant.Kind.PURCHASE,
    expires_on: date | None = None,
    note: str = "",
    by=None,
) -> CreditGrant:
    """Add prepaid credit. A prepaid customer's proxy figure follows on commit, so a top-up
    reopens access on the next request."""
    grant = credit_grant_create(
        customer=customer, amount=amount, kind=kind, expires_on=expires_on, note=note, by=by
    )
    credit_push_on_commit(customer_id=customer.pk)
    return grant


def credit_grant_create(
    *,
    customer: Customer,
    amount: Decimal,
    kind: str = CreditGrant.Kind.PURCHASE,
    expires_on: date | None = None,
    note: str = "",
    by=None,
) -> CreditGrant:
    """The grant itself, inside the caller's transaction; the caller pushes the credit."""
    amount = to_decimal(amount)
    if not amount.is_finite():
        raise PricingError("A credit grant must be a finite amount.")
    if amount <= 0:
        raise PricingError("A credit grant must be a positive amount.")
    if amount > GRANT_MAX:
        raise PricingError(f"A credit grant is at most {GRANT_MAX:,}.")
    if amount != amount.quantize(Decimal("0.01")):
        raise PricingError("A credit grant is in whole cents.")
    if kind not in CreditGrant.Kind.values:
        raise PricingError(f"Unknown credit kind {kind!r}.")
    if expires_on and expires_on < timezone.now().date():
        raise PricingError("The expiry date is in the past.")
    grant = CreditGrant.objects.create(
        customer=customer,
        kind=kind,
        amount=amount,
        remaining=amount,
        expires_on=expires_on,
        note=note,
        created_by=by if getattr(by, "is_authenticated", False) else None,
    )
    wallet_rearm(customer_id=customer.pk)
    return grant


def wallet_rearm(*, customer_id) -> None:
    """After the balance went up: re-arm the low-balance alert for the next time it runs low."""
    profile = billing_profile_get(customer_id=customer_id)
    if (
        profile.low_balance_notified
        and credit_balance(customer_id) >= profile.low_balance_threshold
    ):
        profile.low_balance_notified = False
        profile.save(update_fields=["low_balance_notified"])


def credits_consume(*, invoice: Invoice, amount_due: Decimal, on_day: date) -> Decimal:
    """Pay up to `amount_due` of the invoice from the wallet, soonest-expiring grant first.
    Must run inside the issue transaction: the grants are locked until it commits."""
    applied = Decimal("0.00")
    if amount_due <= 0:
        return applied
    for grant in usable_grants(invoice.customer_id, on_day).select_for_update():
        take = min(grant.remaining, amount_due - applied)
        if take <= 0:
            break
        grant.remaining -= take
        grant.save(update_fields=["remaining"])
        CreditApplication.objects.create(grant=grant, invoice=invoice, amount=take)
        applied += take
    return applied


def credits_restore(*, invoice: Invoice) -> Decimal:
    """Give a voided invoice's credits back to the grants they came from."""
    restored = Decimal("0.00")
    for application in invoice.credit_applications.select_for_update().filter(reversed=False):
        grant = CreditGrant.objects.select_for_update().get(pk=application.grant_id)
        grant.remaining += application.amount
        grant.save(update_fields=["remaining"])
        application.reversed = True
        application.save(update_fields=["reversed"])
        restored += application.amount
    return restored


def credits_return(*, invoice: Invoice, note: Invoice, amount: Decimal) -> Decimal:
    """Give `amount` of what prepaid credit paid on `invoice` back to the grants it came from
    (the credit part of a credit note), the grant consumed last first; each grant keeps its
    expiry, as when an invoice is voided. Recorded as negative CreditApplication rows on the
    credit note (the wallet ledger shows them as returned). Returns what was given back: never
    more than the invoice's credits not yet returned by its earlier credit notes."""
    if amount <= 0:
        return Decimal("0.00")
    consumed = (
        invoice.credit_applications.filter(reversed=False, amount__gt=0)
        .values("grant_id")
        .annotate(paid=Sum("amount"), last=Max("id"))
        .order_by("-last")
    )
    returned = dict(
        CreditApplication.objects.filter(invoice__credited_invoice=invoice, amount__lt=0)
        .values("grant_id")
        .annotate(back=Sum("amount"))
        .values_list("grant_id", "back")
    )
    left = amount
    for row in consumed:
        take = min(left, row["paid"] + returned.get(row["grant_id"], Decimal(0)))
        if take <= 0:
            continue
        grant = CreditGrant.objects.select_for_update().get(pk=row["grant_id"])
        grant.remaining += take
        grant.save(update_fields=["remaining"])
        CreditApplication.objects.create(grant=grant, invoice=note, amount=-take)
        left -= take
        if not left:
            break
    return amount - left


def customer_suspend_for_zero_balance(*, customer: Customer) -> None:
    """Suspend through the customers app's service (it also syncs the proxy and audits)."""
    customer_suspend(customer=customer, source="billing: prepaid credit balance reached zero")


def wallet_after_change(*, customer: Customer, on_day: date) -> None:
    """After credits were consumed: alert once when low, suspend at zero when asked to."""
    from .tasks import low_balance_email_send

    profile = billing_profile_get(customer_id=customer.pk)
    has_wallet = CreditGrant.objects.filter(customer=customer).exists()
    if not has_wallet:
        return
    balance = credit_balance(customer.pk, on_day)
    # A prepaid customer's alert is on the credit available now (the proxy's figure, lower
    # than the wallet by the usage not yet invoiced): the credit reconciler reads it every
    # minute anyway and alerts then (low_balance_alert_live).
    live_alert = getattr(customer, "prepaid", False)
    if (
        not live_alert
        and balance < profile.low_balance_threshold
        and not profile.low_balance_notified
    ):
        profile.low_balance_notified = True
        profile.save(update_fields=["low_balance_notified"])
        transaction.on_commit(lambda: low_balance_email_send.delay(str(customer.pk)))
    if balance <= 0 and profile.suspend_at_zero and customer.status == Customer.Status.ACTIVE:
        customer_suspend_for_zero_balance(customer=customer)


def low_balance_alert_live(*, customer_id, available: Decimal) -> bool:
    """A prepaid customer's credit available now (read from the proxy by the reconciler) is
    below the threshold: alert once, claimed with a conditional update (two reconcilers never
    both mail), re-armed by a top-up as for every wallet (wallet_rearm)."""
    from .tasks import low_balance_email_send

    profile = billing_profile_get(customer_id=customer_id)
    if available >= profile.low_balance_threshold:
        return False
    claimed = BillingProfile.objects.filter(pk=profile.pk, low_balance_notified=False).update(
        low_balance_notified=True
    )
    if claimed:
        figure = str(available)
        transaction.on_commit(lambda: low_balance_email_send.delay(str(customer_id), figure))
    return bool(claimed)
