"""The same Stripe event delivered twice at once, two completions of one session at once, two
clicks on Pay at once: real threads and row locks (PostgreSQL only; SQLite has one writer at a
time and no row locks to test)."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.test import Client

from billing.models import CreditGrant, Invoice, Payment, PaymentEvent
from billing.payments import credit_checkout_open, invoice_checkout_open
from customers.models import AuditEvent, Customer

from .stripe_fakes import completed_session, deliver, event, issued_invoice, stripe_configured

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def stripe_on(settings):
    yield from stripe_configured(settings)


def _at_once(*calls):
    barrier = threading.Barrier(len(calls))
    results, errors = [None] * len(calls), []

    def run(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


@pytest.fixture
def buyer(db):
    return Customer.objects.create(name="Initech", contact_email="ap@initech.example")


def test_the_same_event_twice_at_once_grants_once(stripe_on, buyer):
    payment = credit_checkout_open(customer=buyer, amount="40.00")
    body = event("checkout.session.completed", completed_session(stripe_on, payment))
    answers = _at_once(*[lambda: deliver(Client(), body) for _ in range(4)])
    assert [a.status_code for a in answers] == [200] * 4
    assert sum(bool(a.json().get("replay")) for a in answers) == 3
    assert CreditGrant.objects.filter(customer=buyer).count() == 1
    assert CreditGrant.objects.get().amount == Decimal("40.00")
    assert PaymentEvent.objects.count() == 1


def test_two_events_of_one_session_at_once_grant_once(stripe_on, buyer):
    payment = credit_checkout_open(customer=buyer, amount="40.00")
    session = completed_session(stripe_on, payment)
    completed = event("checkout.session.completed", session)
    succeeded = event("checkout.session.async_payment_succeeded", session)
    answers = _at_once(lambda: deliver(Client(), completed), lambda: deliver(Client(), succeeded))
    assert [a.status_code for a in answers] == [200, 200]
    assert CreditGrant.objects.count() == 1
    assert PaymentEvent.objects.count() == 2


def test_an_invoice_paid_by_two_deliveries_at_once_is_marked_paid_once(stripe_on, buyer):
    invoice = issued_invoice(buyer)
    payment = invoice_checkout_open(invoice=invoice)
    body = event("checkout.session.completed", completed_session(stripe_on, payment))
    answers = _at_once(*[lambda: deliver(Client(), body) for _ in range(3)])
    assert [a.status_code for a in answers] == [200] * 3
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.PAID
    assert AuditEvent.objects.filter(action="invoice.paid").count() == 1


def test_two_clicks_on_pay_at_once_open_one_session(stripe_on, buyer):
    invoice = issued_invoice(buyer)
    payments = _at_once(*[lambda: invoice_checkout_open(invoice=invoice) for _ in range(3)])
    assert len({p.pk for p in payments}) == 1
    assert Payment.objects.filter(invoice=invoice).count() == 1
    assert len(stripe_on.sessions) == 1
