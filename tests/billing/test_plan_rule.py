"""One rule for a plan's terms (pricing.plan_problems), applied by the plan form,
PricingPlan.save(), plan assignment (staff page and API) and the invoice run; a run that cannot
rate a customer says which customer and which plan."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.urls import reverse

from billing import pricing
from billing.forms import PricingPlanForm
from billing.models import Invoice, InvoiceRun, PricingPlan
from billing.pricing import PricingError
from billing.services import invoice_run, invoice_run_execute, invoice_run_request, plan_assign

from .conftest import OCTOBER, TWO_TIERS, written_around_the_rule

pytestmark = pytest.mark.django_db

TODAY = date(2026, 11, 2)
FORM = {
    "name": "Checked",
    "code": "checked",
    "kind": "tiered",
    "metric": "requests",
    "markup_percent": "0",
    "per_request_price": "0",
    "tier_mode": "graduated",
    "tier_1_up_to": "5",
    "tier_1_unit_price": "7",
    "tier_2_unit_price": "6",
    "monthly_fee": "0",
    "included_units": "0",
    "overage_unit_price": "0",
    "package_size": "0",
    "package_price": "0",
    "minimum_commitment": "",
    "is_active": "on",
}


def test_the_form_takes_a_sound_plan():
    form = PricingPlanForm(FORM)
    assert form.is_valid(), form.errors
    assert form.save().tiers == [{"up_to": 5, "unit_price": "7"}, {"unit_price": "6"}]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        # Tiers are rows: each message names its row.
        ("tier_1_unit_price", "NaN", "Row 1: “Price per unit”: enter a price"),
        ("tier_2_unit_price", "Infinity", "Row 2: “Price per unit”: enter a price"),
        ("tier_1_up_to", "NaN", "Row 1: “Up to” must be a whole number"),
        ("tier_1_up_to", "Infinity", "Row 1: “Up to” must be a whole number"),
        ("tier_1_up_to", "5.7", "Row 1: “Up to” must be a whole number"),
        ("tier_1_up_to", "0", "Row 1: “Up to” must be a whole number from 1"),
        ("tier_1_up_to", "true", "Row 1: “Up to” must be a whole number"),
        ("tier_1_unit_price", "-1", "Row 1: “Price per unit” must not be negative"),
        ("tier_1_flat_fee", "-2", "Row 1: “Flat fee” must not be negative"),
        ("tier_1_unit_price", "0.0000000001", "Row 1: “Price per unit” has more than 9"),
        ("per_request_price", "-1", "negative"),
        ("markup_percent", "-5", "negative"),
        ("monthly_fee", "-49", "negative"),
        ("overage_unit_price", "-0.01", "negative"),
        ("package_price", "-25", "negative"),
        ("minimum_commitment", "-500", "negative"),
        ("included_units", "-1", "negative"),
    ],
)
def test_the_form_refuses_what_the_rule_refuses(field, value, message):
    # Each term is checked on a plan of the kind that uses it (other kinds' are ignored).
    kind = {
        "per_request_price": "per_request",
        "markup_percent": "per_token",
        "monthly_fee": "subscription",
        "overage_unit_price": "subscription",
        "included_units": "subscription",
        "package_price": "package",
    }.get(field, "tiered")
    form = PricingPlanForm({**FORM, "kind": kind, "package_size": "10", field: value})
    assert not form.is_valid()
    assert message in " ".join(form.errors[field]), form.errors
    assert not PricingPlan.objects.exists()


def test_a_whole_bound_written_5_0_is_5():
    tiers = pricing.parse_tiers([{"up_to": 5.0, "unit_price": "7"}, {"unit_price": "6"}])
    assert tiers[0].up_to == 5
    # 5.7 used to become int(5.7) = 5 without a word.
    with pytest.raises(PricingError, match=r"Tier 1 up_to must be a whole number, not 5\.7"):
        pricing.parse_tiers([{"up_to": 5.7, "unit_price": "7"}, {"unit_price": "6"}])


def test_the_staff_page_shows_the_rule(staff_client):
    response = staff_client.post(
        reverse("staff:billing_plan_new"),
        {**FORM, "tier_1_up_to": "5.7"},
    )
    assert response.status_code == 200
    assert "Row 1: “Up to” must be a whole number" in response.content.decode()
    assert not PricingPlan.objects.exists()


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "per_request", "per_request_price": D("-1")},
        {"kind": "per_request", "per_request_price": D("NaN")},
        {"kind": "subscription", "monthly_fee": D("-49")},
        {"kind": "per_token", "minimum_commitment": D("-1")},
        {"kind": "package", "package_size": 10, "package_price": D("-1")},
        {"kind": "tiered", "tiers": [{"up_to": 5.7, "unit_price": "1"}, {"unit_price": "1"}]},
        {"kind": "tiered", "tiers": [{"up_to": 5, "unit_price": "NaN"}, {"unit_price": "1"}]},
    ],
)
def test_the_model_refuses_the_same(make_plan, fields):
    with pytest.raises(PricingError, match="is refused"):
        make_plan(**fields)
    assert not PricingPlan.objects.exists()


def test_a_plan_written_around_the_rule_is_not_assigned(customer, make_plan, rw):
    plan = make_plan(kind="per_request", per_request_price=D("0.01"), name="Cheap")
    written_around_the_rule(plan, per_request_price=D("-1"))
    with pytest.raises(PricingError, match="per_request_price: Must not be negative"):
        plan_assign(customer=customer, plan=plan, effective_from=date(2026, 12, 1))
    response = rw.post(
        f"/api/v1/plans/{plan.pk}/assign/",
        {"customer": str(customer.pk), "effective_from": "2026-12-01"},
    )
    assert response.status_code == 400
    assert "Must not be negative" in response.content.decode()


@pytest.fixture
def rw(staff_user):
    from rest_framework.test import APIClient

    from core.models import ApiKey
    from portal.api.keys import api_key_create

    issued = api_key_create(name="plans", scope=ApiKey.Scope.READ_WRITE, created_by=staff_user)
    client = APIClient()
    client.default_format = "json"
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return client


def test_a_nan_tier_fails_the_run_naming_the_customer_and_the_plan(
    customer, other_customer, make_plan, price_book, add_usage, django_capture_on_commit_callbacks
):
    plan = make_plan(kind="tiered", tiers=TWO_TIERS, name="Volume deal")
    plan_assign(customer=customer, plan=plan, effective_from=date(2026, 9, 1))
    # Stored before the plan rule existed (or by SQL): a NaN price in its tiers.
    written_around_the_rule(plan, tiers=[{"up_to": 5, "unit_price": "NaN"}, {"unit_price": "1"}])
    add_usage(customer, date(2026, 10, 3), requests=7)
    add_usage(other_customer, date(2026, 10, 3), requests=7)
    with pytest.raises(PricingError) as caught:
        invoice_run(period_start=OCTOBER, today=TODAY)
    message = str(caught.value)
    # It was a bare "InvalidOperation: [<class 'decimal.InvalidOperation'>]".
    assert f"Plan 'Volume deal' cannot be applied to customer '{customer.name}'" in message
    assert str(customer.pk) in message and "Tier 1 unit_price must be a finite number" in message
    assert not Invoice.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        run = invoice_run_request(period_start=OCTOBER, trigger="staff")
    run.refresh_from_db()
    assert run.status == InvoiceRun.Status.FAILED and run.error == message


def test_a_negative_price_bills_no_negative_invoice(customer, make_plan, price_book, add_usage):
    plan = make_plan(kind="per_request", per_request_price=D("0.01"), name="Per call")
    plan_assign(customer=customer, plan=plan, effective_from=date(2026, 9, 1))
    written_around_the_rule(plan, per_request_price=D("-1"))
    add_usage(customer, date(2026, 10, 3), model_id="test.model-b", requests=100)
    run = invoice_run_execute(
        run_id=invoice_run_request(period_start=OCTOBER, trigger="staff", queue=False).pk,
        today=TODAY,
    )
    assert run.status == InvoiceRun.Status.FAILED
    assert "Plan 'Per call' cannot be applied to customer 'Acme" in run.error
    assert "per_request_price: Must not be negative" in run.error
    assert not Invoice.objects.exists()  # it was a draft of -100.00
