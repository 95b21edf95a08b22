"""Prepaid wallet: grants, consumption by invoices (soonest expiry first), alerts, suspension."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.core import mail

from billing.models import CreditGrant, Invoice
from billing.pricing import PricingError
from billing.selectors import credit_balance, credit_ledger
from billing.services import (
    billing_profile_get,
    credit_grant,
    invoice_issue,
    invoice_line_add,
    invoice_void,
)
from customers.models import Customer

ISSUE_DAY = date(2026, 11, 2)


def make_draft(customer, amount):
    invoice = Invoice.objects.create(
        customer=customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
    )
    invoice_line_add(invoice=invoice, description="Usage", amount=D(amount))
    return invoice


def test_credits_cover_part_of_an_invoice_then_tax(customer, settings):
    settings.BILLING_TAX_RATE = "0.1"
    credit_grant(customer=customer, amount=D("30.00"), kind="purchase")
    invoice = invoice_issue(invoice=make_draft(customer, "100.00"), today=ISSUE_DAY)
    # subtotal 100.00 - credits 30.00 = 70.00 taxable; tax 7.00; total 77.00
    assert (invoice.subtotal, invoice.credits_applied, invoice.tax, invoice.total) == (
        D("100.00"),
        D("30.00"),
        D("7.00"),
        D("77.00"),
    )
    assert credit_balance(customer.pk, ISSUE_DAY) == D("0.00")


def test_credits_cover_all_of_an_invoice(customer):
    credit_grant(customer=customer, amount=D("500.00"))
    invoice = invoice_issue(invoice=make_draft(customer, "120.50"), today=ISSUE_DAY)
    assert (invoice.credits_applied, invoice.total) == (D("120.50"), D("0.00"))
    assert credit_balance(customer.pk, ISSUE_DAY) == D("379.50")


def test_soonest_expiring_grant_is_used_first_and_expired_ones_never(customer):
    expired = credit_grant(
        customer=customer, amount=D("50"), kind="promotional", expires_on=date(2099, 1, 1)
    )
    CreditGrant.objects.filter(pk=expired.pk).update(expires_on=date(2026, 10, 31))
    no_expiry = credit_grant(customer=customer, amount=D("40"))
    late = credit_grant(
        customer=customer, amount=D("40"), kind="promotional", expires_on=date(2027, 6, 1)
    )
    soon = credit_grant(
        customer=customer, amount=D("40"), kind="promotional", expires_on=date(2026, 12, 1)
    )
    invoice_issue(invoice=make_draft(customer, "60"), today=ISSUE_DAY)
    remaining = {g.pk: g.remaining for g in CreditGrant.objects.all()}
    assert remaining[soon.pk] == D("0.00")
    assert remaining[late.pk] == D("20.00")
    assert remaining[no_expiry.pk] == D("40.00")
    assert remaining[expired.pk] == D("50.00")  # expired before the issue day: untouched
    assert credit_balance(customer.pk, ISSUE_DAY) == D("60.00")


def test_void_gives_credits_back(customer):
    credit_grant(customer=customer, amount=D("30"))
    invoice = invoice_issue(invoice=make_draft(customer, "100"), today=ISSUE_DAY)
    invoice_void(invoice=invoice, reason="duplicate")
    assert credit_balance(customer.pk, ISSUE_DAY) == D("30.00")
    kinds = [e["kind"] for e in credit_ledger(customer.pk)]
    assert "Applied to invoice" in kinds and "Returned (invoice void)" in kinds


@pytest.mark.parametrize(
    ("amount", "expires_on"),
    [(D("0"), None), (D("-5"), None), (D("1.001"), None), (D("5"), date(2000, 1, 1))],
)
def test_bad_grants_are_refused(customer, amount, expires_on):
    with pytest.raises(PricingError):
        credit_grant(customer=customer, amount=amount, expires_on=expires_on)


def test_low_balance_alert_is_sent_once(customer, django_capture_on_commit_callbacks):
    credit_grant(customer=customer, amount=D("100"))
    with django_capture_on_commit_callbacks(execute=True):
        invoice_issue(invoice=make_draft(customer, "95"), today=ISSUE_DAY)
    low = [m for m in mail.outbox if "balance is low" in m.subject]
    assert len(low) == 1 and low[0].to == [customer.contact_email]
    assert "5.00" in low[0].body
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        invoice_issue(
            invoice=Invoice.objects.create(
                customer=customer, period_start=date(2026, 9, 1), period_end=date(2026, 9, 30)
            ),
            today=ISSUE_DAY,
        )
    assert not [m for m in mail.outbox if "balance is low" in m.subject]
    # A top-up above the threshold re-arms the alert.
    credit_grant(customer=customer, amount=D("50"))
    assert billing_profile_get(customer_id=customer.pk).low_balance_notified is False


def test_suspension_at_zero_only_when_enabled(customer, other_customer):
    profile = billing_profile_get(customer_id=customer.pk)
    profile.suspend_at_zero = True
    profile.save()
    credit_grant(customer=customer, amount=D("10"))
    credit_grant(customer=other_customer, amount=D("10"))
    invoice_issue(invoice=make_draft(customer, "25"), today=ISSUE_DAY)
    invoice_issue(invoice=make_draft(other_customer, "25"), today=ISSUE_DAY)
    customer.refresh_from_db()
    other_customer.refresh_from_db()
    assert customer.status == Customer.Status.SUSPENDED
    assert other_customer.status == Customer.Status.ACTIVE
