"""Staff billing pages: drafts review, manual lines, issue, mark paid, void, wallet, plans."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.core import mail
from django.urls import reverse

from billing.models import CreditGrant, CustomerPlan, Invoice

from .conftest import OCTOBER, TWO_TIERS, written_around_the_rule


@pytest.fixture
def draft(customer):
    return Invoice.objects.create(
        customer=customer, period_start=OCTOBER, period_end=date(2026, 10, 31)
    )


def test_customer_user_gets_403_and_anonymous_is_sent_to_login(client, customer_client, draft):
    urls = [
        reverse("staff:billing_invoices"),
        reverse("staff:billing_invoice_detail", args=[draft.pk]),
        reverse("staff:billing_customer", args=[draft.customer_id]),
        reverse("staff:billing_catalog"),
    ]
    for url in urls:
        assert customer_client.get(url).status_code == 403
    assert (
        customer_client.post(reverse("staff:billing_invoice_issue", args=[draft.pk])).status_code
        == 403
    )
    client.logout()
    assert client.get(urls[0]).status_code == 302
    draft.refresh_from_db()
    assert draft.status == Invoice.Status.DRAFT


def test_run_review_add_line_issue_pay(
    staff_client, customer, price_book, add_usage, django_capture_on_commit_callbacks
):
    add_usage(customer, date(2026, 10, 3), input_tokens=100_000, output_tokens=10_000)
    with django_capture_on_commit_callbacks(execute=True):  # the run is queued after commit
        response = staff_client.post(
            reverse("staff:billing_run"), {"month": "2026-10"}, follow=True
        )
    assert "October 2026 queued" in response.content.decode()
    runs = staff_client.get(reverse("staff:billing_runs"))
    assert [(r.status, r.drafts_created) for r in runs.context["page"]] == [("succeeded", 1)]
    invoice = Invoice.objects.get(customer=customer)
    listing = staff_client.get(reverse("staff:billing_invoices") + "?status=draft")
    assert customer.name in listing.content.decode()
    detail_url = reverse("staff:billing_invoice_detail", args=[invoice.pk])
    staff_client.post(
        reverse("staff:billing_invoice_add_line", args=[invoice.pk]),
        {"description": "Onboarding", "amount": "100"},
    )
    invoice.refresh_from_db()
    assert invoice.subtotal == D("100.45")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("staff:billing_invoice_issue", args=[invoice.pk]), {"confirm": "1"}, follow=True
        )
    assert "Invoice issued" in response.content.decode()
    invoice.refresh_from_db()
    assert invoice.number == "INV-000001"
    assert mail.outbox[-1].attachments[0][0] == "INV-000001.pdf"
    # Issued: the page no longer offers to add lines, and posting one is refused politely.
    assert "Add a line" not in staff_client.get(detail_url).content.decode()
    refused = staff_client.post(
        reverse("staff:billing_invoice_add_line", args=[invoice.pk]),
        {"description": "Sneaky", "amount": "1"},
        follow=True,
    )
    assert refused.status_code == 200 and "not a draft" in refused.content.decode()
    staff_client.post(reverse("staff:billing_invoice_mark_paid", args=[invoice.pk]))
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID


def test_void_needs_a_reason_and_has_confirmation(staff_client, draft):
    from billing.services import invoice_issue, invoice_line_add

    invoice_line_add(invoice=draft, description="Usage", amount=D("12.00"))
    invoice = invoice_issue(invoice=draft)
    detail = staff_client.get(
        reverse("staff:billing_invoice_detail", args=[invoice.pk])
    ).content.decode()
    assert reverse("staff:billing_invoice_void", args=[invoice.pk]) in detail
    staff_client.post(reverse("staff:billing_invoice_void", args=[invoice.pk]), {"reason": ""})
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.ISSUED
    # The first POST asks (a page, not only a JavaScript confirm()); nothing is voided yet.
    url = reverse("staff:billing_invoice_void", args=[invoice.pk])
    asking = staff_client.post(url, {"reason": "Wrong period", "reissue": "on"})
    assert asking.status_code == 200 and "Void INV-000001" in asking.content.decode()
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.ISSUED
    response = staff_client.post(url, {"reason": "Wrong period", "reissue": "on", "confirm": "1"})
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.VOID
    replacement = Invoice.objects.get(replaces=invoice)
    assert response.url == reverse("staff:billing_invoice_detail", args=[replacement.pk])


@pytest.mark.parametrize("amount", ["abc", "1e999", "", "12.345"])
def test_bad_manual_line_is_a_message_not_an_error(staff_client, draft, amount):
    response = staff_client.post(
        reverse("staff:billing_invoice_add_line", args=[draft.pk]),
        {"description": "x", "amount": amount},
        follow=True,
    )
    assert response.status_code == 200
    assert draft.lines.count() == 0


def test_unknown_ids_are_404(staff_client):
    import uuid

    assert (
        staff_client.get(reverse("staff:billing_invoice_detail", args=[uuid.uuid4()])).status_code
        == 404
    )
    assert (
        staff_client.post(reverse("staff:billing_invoice_issue", args=[uuid.uuid4()])).status_code
        == 404
    )


def test_staff_re_rate_a_draft(staff_client, customer, price_book, add_usage, draft):
    add_usage(customer, date(2026, 10, 3), input_tokens=100_000, output_tokens=10_000)
    detail = reverse("staff:billing_invoice_detail", args=[draft.pk])
    assert "Re-rate from usage" in staff_client.get(detail).content.decode()
    response = staff_client.post(
        reverse("staff:billing_invoice_refresh", args=[draft.pk]), {"confirm": "1"}, follow=True
    )
    assert "Draft re-rated" in response.content.decode()
    draft.refresh_from_db()
    assert draft.subtotal == D("0.45") and draft.lines.get().kind == "usage"


def test_bad_run_month(staff_client):
    response = staff_client.post(reverse("staff:billing_run"), {"month": "2026-13"}, follow=True)
    assert response.status_code == 200 and "YYYY-MM" in response.content.decode()


def test_run_for_a_month_not_ended_is_a_message(staff_client, customer):
    response = staff_client.post(reverse("staff:billing_run"), {"month": "2099-01"}, follow=True)
    assert response.status_code == 200
    assert "January 2099 has not ended yet" in response.content.decode()
    assert not Invoice.objects.exists()


def test_wallet_and_plan_forms(staff_client, customer, make_plan):
    url = reverse("staff:billing_customer", args=[customer.pk])
    assert staff_client.get(url).status_code == 200
    staff_client.post(
        reverse("staff:billing_credit_grant", args=[customer.pk]),
        {"amount": "50.00", "kind": "promotional", "expires_on": "2099-01-01", "note": "Welcome"},
    )
    assert CreditGrant.objects.get(customer=customer).remaining == D("50.00")
    bad = staff_client.post(
        reverse("staff:billing_credit_grant", args=[customer.pk]),
        {"amount": "-5", "kind": "purchase"},
        follow=True,
    )
    assert bad.status_code == 200 and CreditGrant.objects.count() == 1
    plan = make_plan(kind="per_request", per_request_price=D("0.002"), name="Simple")
    staff_client.post(
        reverse("staff:billing_plan_assign", args=[customer.pk]),
        {"plan": plan.pk, "effective_from": "2026-11-01"},
    )
    staff_client.post(
        reverse("staff:billing_plan_assign", args=[customer.pk]),
        {"plan": plan.pk, "effective_from": "2026-12-01"},
    )
    history = list(CustomerPlan.objects.filter(customer=customer).order_by("effective_from"))
    assert [(a.effective_from, a.effective_to) for a in history] == [
        (date(2026, 11, 1), date(2026, 12, 1)),
        (date(2026, 12, 1), None),
    ]
    staff_client.post(
        reverse("staff:billing_profile_update", args=[customer.pk]),
        {"low_balance_threshold": "20.00", "suspend_at_zero": "on"},
    )
    assert customer.billing_profile.suspend_at_zero is True
    page = staff_client.get(url).content.decode()
    assert "Welcome" in page and "Simple" in page


def test_staff_home_and_catalog(staff_client, price_book):
    assert "Cost so far" in staff_client.get(reverse("staff:home")).content.decode()
    catalog = staff_client.get(reverse("staff:billing_catalog")).content.decode()
    assert "Claude 3 Haiku" in catalog and "23 Nov 2026" in catalog


def test_bulk_issue_selected_drafts(staff_client, customer, other_customer):
    drafts = [
        Invoice.objects.create(customer=c, period_start=OCTOBER, period_end=date(2026, 10, 31))
        for c in (customer, other_customer)
    ]
    listing = staff_client.get(reverse("staff:billing_invoices")).content.decode()
    assert "Issue selected" in listing and 'data-select-all="invoice"' in listing
    response = staff_client.post(
        reverse("staff:billing_invoices_issue"),
        {"invoice": [str(d.pk) for d in drafts] + ["not-a-uuid"], "confirm": "1"},
        follow=True,
    )
    assert "2 invoices issued" in response.content.decode()
    assert sorted(Invoice.objects.values_list("number", flat=True)) == ["INV-000001", "INV-000002"]
    again = staff_client.post(reverse("staff:billing_invoices_issue"), {}, follow=True)
    assert "Select at least one draft" in again.content.decode()


def test_run_with_a_broken_plan_is_shown_on_the_runs_page(
    staff_client, customer, make_plan, django_capture_on_commit_callbacks
):
    from billing.services import plan_assign

    plan = make_plan(kind="tiered", tiers=TWO_TIERS, name="Broken")
    plan_assign(customer=customer, plan=plan, effective_from=date(2026, 9, 1))
    written_around_the_rule(plan, tiers=[{"up_to": 5, "unit_price": "1"}])
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(reverse("staff:billing_run"), {"month": "2026-10"})
    response = staff_client.get(reverse("staff:billing_runs"))
    assert response.status_code == 200
    assert "Broken" in response.content.decode() and "open-ended" in response.content.decode()
    assert not Invoice.objects.exists()


def test_customer_lookup_reaches_billing_page_before_any_invoice(
    staff_client, customer, other_customer
):
    from billing.services import credit_grant

    credit_grant(customer=customer, amount=D("12.50"))
    page = staff_client.get(reverse("staff:billing_customers") + "?q=acme").content.decode()
    assert reverse("staff:billing_customer", args=[customer.pk]) in page
    assert "12.50" in page
    assert other_customer.name not in page


def test_staff_create_and_validate_plans(staff_client):
    from billing.models import PricingPlan

    url = reverse("staff:billing_plan_new")
    assert staff_client.get(url).status_code == 200
    base = {
        "name": "Stripe fonts",
        "code": "stripe-fonts",
        "kind": "tiered",
        "metric": "requests",
        "markup_percent": "0",
        "per_request_price": "0",
        "tier_mode": "graduated",
        "monthly_fee": "0",
        "included_units": "0",
        "overage_unit_price": "0",
        "package_size": "0",
        "package_price": "0",
        "is_active": "on",
    }
    bad = staff_client.post(url, {**base, "tier_1_up_to": "5", "tier_1_unit_price": "7"})
    assert bad.status_code == 200 and "leave “Up to” empty on the last row" in bad.content.decode()
    garbage = staff_client.post(url, {**base, "tier_1_up_to": "not a number"})
    assert garbage.status_code == 200 and not PricingPlan.objects.exists()
    good = staff_client.post(
        url,
        {
            **base,
            **{"tier_1_up_to": "5", "tier_1_unit_price": "7"},
            **{"tier_2_up_to": "10", "tier_2_unit_price": "6.5"},
            **{"tier_3_unit_price": "6"},
        },
    )
    assert good.status_code == 302
    plan = PricingPlan.objects.get(code="stripe-fonts")
    assert plan.tiers == [
        {"up_to": 5, "unit_price": "7"},
        {"up_to": 10, "unit_price": "6.5"},
        {"unit_price": "6"},
    ]
    edit = staff_client.post(
        reverse("staff:billing_plan_edit", args=[plan.pk]), {**base, "kind": "package"}
    )
    assert edit.status_code == 200 and "positive size" in edit.content.decode()
    assert "Stripe fonts" in staff_client.get(reverse("staff:billing_catalog")).content.decode()
