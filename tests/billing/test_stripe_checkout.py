"""Opening Stripe Checkout: a customer pays an issued invoice or buys prepaid credit, staff
email a payment link; off (no keys) there is nothing to see and every payment URL is a 404."""

from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse

from billing.models import Invoice, Payment
from billing.payments import credit_purchase_amount, invoice_checkout_open
from billing.services import invoice_mark_paid, invoice_void
from billing.stripe_gateway import PaymentError, from_minor, to_minor
from customers.models import AuditEvent

from .stripe_fakes import issued_invoice, stripe_configured

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_on(settings):
    yield from stripe_configured(settings)


def _pay(client, invoice):
    return client.post(reverse("customer:invoice_pay", args=[invoice.pk]))


# --- Off by default -----------------------------------------------------------------------


def test_without_keys_there_are_no_pay_buttons_and_the_urls_are_404(
    client, customer_user, staff_user, customer
):
    invoice = issued_invoice(customer)
    client.force_login(customer_user)
    page = client.get(reverse("customer:invoice_detail", args=[invoice.pk]))
    assert b"by card" not in page.content
    assert b"Buy credit" not in client.get(reverse("customer:billing_overview")).content
    assert _pay(client, invoice).status_code == 404
    assert client.get(reverse("customer:credit_buy")).status_code == 404
    client.force_login(staff_user)
    staff_page = client.get(reverse("staff:billing_invoice_detail", args=[invoice.pk]))
    assert b"payment link" not in staff_page.content
    link = reverse("staff:billing_invoice_payment_link", args=[invoice.pk])
    assert client.post(link).status_code == 404
    client.logout()
    assert client.post("/stripe/webhook/", data="{}", content_type="x").status_code == 404
    assert client.get("/stripe/webhook/").status_code == 404
    assert Payment.objects.count() == 0


def test_one_key_without_the_other_stops_start_up():
    from tests.test_settings import PRODUCTION_ENV, _manage

    result = _manage("check", env={**PRODUCTION_ENV, "STRIPE_SECRET_KEY": "sk_test_x"})
    assert result.returncode != 0
    assert "set STRIPE_WEBHOOK_SECRET too" in result.stderr
    assert "sk_test_x" not in result.stderr  # the key itself is never echoed


def test_with_keys_the_pay_form_may_go_on_to_checkout():
    """The Content-Security-Policy's form-action lets the redirect to Stripe Checkout through."""
    from tests.test_settings import PRODUCTION_ENV, _manage

    env = {**PRODUCTION_ENV, "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}
    show = "from django.conf import settings; print(settings.CONTENT_SECURITY_POLICY)"
    result = _manage("shell", "-c", show, env=env)
    assert "form-action 'self' https://checkout.stripe.com;" in result.stdout, result.stderr
    without = _manage("shell", "-c", show, env=PRODUCTION_ENV)
    assert "form-action 'self';" in without.stdout


# --- Money in minor units -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("120.50", "USD", 12050), ("0.01", "EUR", 1), ("1200", "JPY", 1200), ("12.34", "KWD", 12340)],
)
def test_amounts_convert_exactly_both_ways(amount, currency, minor):
    assert to_minor(Decimal(amount), currency) == minor
    assert from_minor(minor, currency) == Decimal(amount)


def test_amounts_a_currency_cannot_hold_are_refused():
    with pytest.raises(PaymentError):
        to_minor(Decimal("12.34"), "JPY")
    assert from_minor(12345, "KWD") is None  # 12.345: not whole cents


# --- Paying an invoice --------------------------------------------------------------------


def test_customer_pays_an_issued_invoice_through_checkout(customer_client, customer, stripe_on):
    invoice = issued_invoice(customer)
    page = customer_client.get(reverse("customer:invoice_detail", args=[invoice.pk]))
    assert b"Pay 120.50 USD by card" in page.content
    response = _pay(customer_client, invoice)
    assert response.status_code == 303
    payment = Payment.objects.get()
    assert response["Location"] == payment.checkout_url
    assert payment.checkout_url.startswith("https://checkout.stripe.com/")
    assert (payment.amount, payment.currency, payment.status) == (Decimal("120.50"), "USD", "open")
    assert (payment.invoice, payment.customer, payment.purpose) == (invoice, customer, "invoice")
    [sent] = stripe_on.created_sessions()
    params = sent["params"]
    assert params["mode"] == "payment"
    assert params["line_items[0][price_data][unit_amount]"] == "12050"
    assert params["line_items[0][price_data][currency]"] == "usd"
    assert params["metadata[invoice]"] == str(invoice.pk)
    assert params["metadata[customer]"] == str(customer.pk)
    assert params["payment_intent_data[metadata][invoice]"] == str(invoice.pk)
    assert params["client_reference_id"] == str(invoice.pk)
    detail = f"https://portal.example.test/app/billing/invoices/{invoice.pk}/"
    assert params["success_url"] == detail + "?payment=success"
    assert params["cancel_url"] == detail + "?payment=cancelled"
    assert sent["key"] == f"invoice-{invoice.pk}-checkout-1"


def test_paying_twice_hands_back_the_open_session(customer_client, customer, stripe_on):
    invoice = issued_invoice(customer)
    first = _pay(customer_client, invoice)["Location"]
    second = _pay(customer_client, invoice)["Location"]
    assert first == second
    assert len(stripe_on.created_sessions()) == 1
    assert Payment.objects.count() == 1


def test_a_session_whose_answer_was_lost_is_given_back_not_made_twice(customer, stripe_on):
    invoice = issued_invoice(customer)

    def lost_answer():
        from django.db import transaction

        with transaction.atomic():
            invoice_checkout_open(invoice=invoice)
            raise RuntimeError("the web process died before commit")

    with pytest.raises(RuntimeError):
        lost_answer()
    assert Payment.objects.count() == 0
    payment = invoice_checkout_open(invoice=invoice)
    requests = stripe_on.created_sessions()
    assert len(requests) == 2 and requests[0]["key"] == requests[1]["key"]
    assert len(stripe_on.sessions) == 1  # Stripe replayed its first answer
    assert payment.checkout_session_id in stripe_on.sessions


def test_a_session_near_its_end_is_expired_before_a_new_one_is_opened(customer, stripe_on):
    invoice = issued_invoice(customer)
    stripe_on.expires_in = 5 * 60  # less than the reuse margin
    old = invoice_checkout_open(invoice=invoice)
    stripe_on.expires_in = 24 * 3600
    new = invoice_checkout_open(invoice=invoice)
    assert new.pk != old.pk
    old.refresh_from_db()
    assert old.status == Payment.Status.EXPIRED
    assert stripe_on.sessions[old.checkout_session_id]["status"] == "expired"
    assert Payment.objects.filter(invoice=invoice, status="open").count() == 1
    assert stripe_on.created_sessions()[-1]["key"].endswith("-checkout-2")


def test_a_session_paid_just_before_it_would_be_replaced_is_not_replaced(customer, stripe_on):
    invoice = issued_invoice(customer)
    stripe_on.expires_in = 60
    old = invoice_checkout_open(invoice=invoice)
    stripe_on.sessions[old.checkout_session_id]["status"] = "complete"
    with pytest.raises(PaymentError, match="just paid"):
        invoice_checkout_open(invoice=invoice)
    assert len(stripe_on.created_sessions()) == 1


@pytest.mark.parametrize("state", ["draft", "paid", "void", "zero", "credit_note"])
def test_only_an_issued_invoice_with_something_due_can_be_paid(customer, stripe_on, state):
    if state == "draft":
        invoice = Invoice.objects.create(
            customer=customer, period_start="2026-10-01", period_end="2026-10-31"
        )
    elif state == "zero":
        invoice = issued_invoice(customer, amount="0")
    else:
        invoice = issued_invoice(customer)
        if state == "paid":
            invoice_mark_paid(invoice=invoice)
        elif state == "void":
            invoice_void(invoice=invoice, reason="wrong month")
        else:
            from billing.services import credit_note_issue

            invoice = credit_note_issue(invoice=invoice, amount=Decimal("10"), reason="goodwill")
    with pytest.raises(PaymentError):
        invoice_checkout_open(invoice=invoice)
    assert stripe_on.requests == []


def test_another_customers_invoice_is_404(customer_client, other_customer, stripe_on):
    invoice = issued_invoice(other_customer)
    assert _pay(customer_client, invoice).status_code == 404
    assert stripe_on.requests == [] and Payment.objects.count() == 0


def test_paying_needs_a_post_with_csrf(client, customer_user, customer, stripe_on):
    from django.test import Client

    invoice = issued_invoice(customer)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(customer_user)
    assert strict.post(reverse("customer:invoice_pay", args=[invoice.pk])).status_code == 403
    client.force_login(customer_user)
    assert client.get(reverse("customer:invoice_pay", args=[invoice.pk])).status_code == 405
    assert stripe_on.requests == []


def test_stripe_refusing_shows_a_message_and_records_nothing(customer_client, customer, stripe_on):
    invoice = issued_invoice(customer)
    stripe_on.fail_with = (500, {"type": "api_error", "message": "boom"})
    response = _pay(customer_client, invoice)
    assert response.status_code == 302
    page = customer_client.get(response["Location"])
    assert b"Try again in a minute" in page.content
    assert Payment.objects.count() == 0


def test_paid_by_hand_closes_the_open_session_at_stripe(
    customer, stripe_on, django_capture_on_commit_callbacks
):
    invoice = issued_invoice(customer)
    payment = invoice_checkout_open(invoice=invoice)
    with django_capture_on_commit_callbacks(execute=True):
        invoice_mark_paid(invoice=invoice)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.EXPIRED
    assert stripe_on.sessions[payment.checkout_session_id]["status"] == "expired"
    event = AuditEvent.objects.get(action="invoice.paid")
    assert event.after["paid_via"] == "manual"


# --- Buying credit ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter the amount"),
        ("abc", "Enter an amount such as"),
        ("10,50", "Enter an amount such as"),
        ("-20", "Enter an amount such as"),
        ("1e3", "Enter an amount such as"),
        ("NaN", "Enter an amount such as"),
        ("25.005", "whole cents"),
        ("9.99", "smallest purchase is 10.00 USD"),
        ("5000.01", "largest purchase is 5000.00 USD"),
        ("9" * 30, "Enter an amount such as"),
    ],
)
def test_credit_amounts_are_checked_with_clear_errors(stripe_on, typed, message):
    with pytest.raises(PaymentError, match=message):
        credit_purchase_amount(typed)


def test_credit_amounts_within_the_limits_are_taken(stripe_on, settings):
    assert credit_purchase_amount(" 49.9 ") == Decimal("49.90")
    assert credit_purchase_amount("10") == Decimal("10.00")
    settings.STRIPE_CREDIT_PURCHASE_MIN = "1"
    assert credit_purchase_amount("1.00") == Decimal("1.00")


def test_customer_buys_credit_through_checkout(customer_client, customer, stripe_on):
    page = customer_client.get(reverse("customer:billing_overview"))
    assert b"Buy credit by card" in page.content
    form = customer_client.get(reverse("customer:credit_buy"))
    reference = form.context["form"].initial["reference"]
    data = {"amount": "75.25", "reference": reference}
    response = customer_client.post(reverse("customer:credit_buy"), data)
    assert response.status_code == 303
    payment = Payment.objects.get()
    assert (payment.purpose, payment.amount, payment.invoice) == ("credit", Decimal("75.25"), None)
    again = customer_client.post(reverse("customer:credit_buy"), data)  # a double click
    assert again["Location"] == response["Location"]
    assert Payment.objects.count() == 1 and len(stripe_on.sessions) == 1
    params = stripe_on.created_sessions()[0]["params"]
    assert params["line_items[0][price_data][unit_amount]"] == "7525"
    assert params["metadata[purpose]"] == "credit"
    assert params["metadata[customer]"] == str(customer.pk)
    assert params["success_url"] == "https://portal.example.test/app/billing/?payment=success"


def test_a_bad_amount_is_shown_next_to_the_field(customer_client, stripe_on):
    response = customer_client.post(reverse("customer:credit_buy"), {"amount": "3"})
    assert response.status_code == 400
    assert b"The smallest purchase is 10.00 USD." in response.content
    assert b'role="alert"' in response.content
    empty = customer_client.post(reverse("customer:credit_buy"), {})
    assert empty.status_code == 400 and b"This field is required" in empty.content
    assert stripe_on.requests == []


# --- Staff payment link -------------------------------------------------------------------


def test_staff_email_a_payment_link_audited(
    staff_client, staff_user, customer, stripe_on, django_capture_on_commit_callbacks
):
    customer.extra_contact_emails = ["finance@acme.example"]
    customer.save()
    invoice = issued_invoice(customer)
    mail.outbox.clear()
    page = staff_client.get(reverse("staff:billing_invoice_detail", args=[invoice.pk]))
    assert b"Email a payment link" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("staff:billing_invoice_payment_link", args=[invoice.pk])
        )
    assert response.status_code == 302
    payment = Payment.objects.get()
    assert payment.source == Payment.Source.STAFF_LINK and payment.created_by == staff_user
    [message] = mail.outbox
    assert message.to == ["billing@acme.example", "finance@acme.example"]
    assert invoice.number in message.subject
    assert payment.checkout_url in message.body
    assert payment.checkout_url in message.alternatives[0][0]
    audit = AuditEvent.objects.get(action="invoice.payment_link")
    assert audit.actor == staff_user and audit.object_id == str(invoice.pk)
    assert audit.after["checkout_session"] == payment.checkout_session_id
    assert "sk_test" not in str(audit.after) and "whsec" not in str(audit.after)


def test_a_payment_link_for_a_paid_invoice_is_refused_with_a_message(
    staff_client, customer, stripe_on
):
    invoice = issued_invoice(customer)
    invoice_mark_paid(invoice=invoice)
    response = staff_client.post(
        reverse("staff:billing_invoice_payment_link", args=[invoice.pk]), follow=True
    )
    assert b"Only an issued invoice" in response.content
    assert Payment.objects.count() == 0


def test_a_lost_session_that_expired_since_is_replaced_by_a_new_one(customer, stripe_on):
    import json
    import time

    from django.db import transaction

    invoice = issued_invoice(customer)
    with pytest.raises(RuntimeError), transaction.atomic():
        invoice_checkout_open(invoice=invoice)
        raise RuntimeError("the answer was lost")
    # A day later, Stripe's replay of that key is a session that has expired since.
    [first] = stripe_on.created_sessions()
    params, text = stripe_on._by_key[first["key"]]
    stripe_on._by_key[first["key"]] = (
        params,
        json.dumps({**json.loads(text), "expires_at": int(time.time()) - 60}),
    )
    payment = invoice_checkout_open(invoice=invoice)
    keys = [r["key"] for r in stripe_on.created_sessions()]
    assert [k.rsplit("-", 1)[1] for k in keys] == ["1", "1", "2"]
    assert payment.status == Payment.Status.OPEN
    statuses = invoice.payments.order_by("created_at").values_list("status", flat=True)
    assert list(statuses) == ["expired", "open"]


@pytest.mark.parametrize(
    "data",
    [
        {"amount": "\x00"},
        {"amount": "9" * 30},
        {"amount": "1" * 21},
        {"amount": "20", "reference": "\x00" * 80},
        {"amount": ["20", "20"]},
        {"amount": "20", "reference": "' OR 1=1 --"},
    ],
)
def test_junk_credit_purchases_never_500(customer_client, stripe_on, data):
    response = customer_client.post(reverse("customer:credit_buy"), data)
    assert response.status_code in (303, 400)
    if response.status_code == 303:  # a junk reference is replaced by a fresh one
        assert Payment.objects.get().amount == Decimal("20.00")
