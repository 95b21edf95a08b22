"""Monthly budgets (customers and tokens) and the prepaid flag, in the portal: validation,
micro-units in the items the proxy reads, audit, staff and customer pages, the command."""

import dataclasses
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from customers import services, validators
from customers.models import AuditEvent, Customer, SyncOutbox, Token
from customers.money import amount_from_micros, budget_micros, micros_text
from customers.reconcile import dynamodb_reconcile
from proxy import contract

from .conftest import remote_token

pytestmark = pytest.mark.django_db

HOSTILE = [
    ("-5", "must be more than 0"),
    (-5, "must be more than 0"),
    (Decimal("-0.01"), "must be more than 0"),
    ("0", "must be more than 0"),
    ("0.00", "must be more than 0"),
    ("NaN", "at most 2 decimals"),
    (Decimal("NaN"), "at most 2 decimals"),
    (Decimal("sNaN"), "at most 2 decimals"),
    ("Infinity", "at most 2 decimals"),
    (Decimal("Infinity"), "at most 2 decimals"),
    ("1e999", "at most 2 decimals"),
    ("1E3", "at most 2 decimals"),
    ("12.345", "whole number of cents"),
    (Decimal("0.001"), "whole number of cents"),
    ("1000000000.01", "too large: at most 1,000,000,000 USD"),
    (10**30, "too large"),
    ("9" * 40, "too large"),
    ("12\x00", "at most 2 decimals"),
    ("\x0712", "at most 2 decimals"),
    ("12,50", "at most 2 decimals"),
    ("1_000", "at most 2 decimals"),
    ("١٢", "at most 2 decimals"),  # digits of another script: Decimal() would take them
    ("+5", "at most 2 decimals"),
    ("50 USD", "at most 2 decimals"),
    (12.5, "not as a floating-point number"),
    (float("nan"), "not as a floating-point number"),
    (True, "at most 2 decimals"),
    ([50], "at most 2 decimals"),
    ({"amount": "50"}, "at most 2 decimals"),
]


# --- the rule -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "message"), HOSTILE)
def test_hostile_budgets_are_refused_with_what_to_fix(value, message):
    with pytest.raises(ValidationError) as refused:
        validators.monthly_budget(value)
    text = " ".join(refused.value.messages)
    assert message in text
    assert text.startswith("Monthly budget")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.34", Decimal("12.34")),
        (" 12.3 ", Decimal("12.30")),
        ("12.340", Decimal("12.34")),  # a whole number of cents, however written
        (50, Decimal("50.00")),
        (Decimal("0.01"), Decimal("0.01")),
        ("1000000000", Decimal("1000000000.00")),
        ("", None),
        ("none", None),
        (None, None),
    ],
)
def test_budgets_are_read_exactly(value, expected):
    assert validators.monthly_budget(value) == expected


@pytest.mark.parametrize(
    ("amount", "micros"),
    [
        (Decimal("12.34"), 12_340_000),
        (Decimal("0.01"), 10_000),
        (Decimal("2.01"), 2_010_000),  # 2.01 * 10**6 is 2009999.9999999998 in floats
        (Decimal("1000000000.00"), 10**15),
        (None, None),
    ],
)
def test_micros_are_exact(amount, micros):
    assert budget_micros(amount) == micros
    if micros is not None:
        assert amount_from_micros(micros) == amount


def test_amounts_shown_to_people_round_half_up_to_the_cent():
    assert micros_text(40_000_000) == "40.00 USD"
    assert micros_text(1_234_565_000) == "1,234.57 USD"
    assert micros_text(4_999) == "0.00 USD"
    assert micros_text(5_000) == "0.01 USD"


# --- services and the outbox -------------------------------------------------------------------


def test_customer_budget_and_prepaid_reach_dynamodb_as_micros(ddb, customer, staff_user):
    customer = services.customer_update_limits(
        customer=customer, actor=staff_user, monthly_budget="12.34", prepaid=True
    )
    assert customer.monthly_budget == Decimal("12.34") and customer.prepaid
    row = SyncOutbox.objects.filter(kind="customer").latest("id")
    assert row.payload["monthly_budget_micros"] == 12_340_000
    assert row.payload["prepaid"] is True
    item = contract.get_customer(ddb, str(customer.pk))
    assert item.monthly_budget_micros == 12_340_000 and item.prepaid is True
    assert item.version == customer.sync_version
    event = AuditEvent.objects.filter(action="customer.limits").latest("id")
    assert event.before == {"monthly_budget": None, "prepaid": False}
    assert event.after == {"monthly_budget": "12.34", "prepaid": True}


def test_changing_the_budget_bumps_the_version_and_clearing_it_removes_the_cap(ddb, customer):
    customer = services.customer_update_limits(customer=customer, monthly_budget="100")
    first = contract.get_customer(ddb, str(customer.pk))
    customer = services.customer_update_limits(customer=customer, monthly_budget="40.5")
    second = contract.get_customer(ddb, str(customer.pk))
    # A newer version is what makes the proxy take the tighter budget on the next request.
    assert second.version > first.version
    assert (first.monthly_budget_micros, second.monthly_budget_micros) == (100_000_000, 40_500_000)
    # the same budget again: nothing to record, nothing to deliver
    services.customer_update_limits(customer=customer, monthly_budget=Decimal("40.50"))
    assert contract.get_customer(ddb, str(customer.pk)).version == second.version
    services.customer_update_limits(customer=customer, monthly_budget=None, prepaid=False)
    assert contract.get_customer(ddb, str(customer.pk)).monthly_budget_micros is None


@pytest.mark.parametrize(("value", "message"), HOSTILE[:12])
def test_services_refuse_hostile_budgets_and_change_nothing(ddb, customer, value, message):
    issued = services.token_create(customer=customer)
    with pytest.raises(ValidationError, match=message):
        services.customer_update_limits(customer=customer, monthly_budget=value)
    with pytest.raises(ValidationError, match=message):
        services.token_update_limits(token=issued.token, monthly_budget=value)
    with pytest.raises(ValidationError, match=message):
        services.token_create(customer=customer, limits={"monthly_budget": value})
    customer.refresh_from_db()
    assert customer.monthly_budget is None and Token.objects.count() == 1
    assert Token.objects.get().monthly_budget is None


@pytest.mark.parametrize("value", ["yes", 1, 0, None, "true"])
def test_prepaid_is_true_or_false_only(ddb, customer, value):
    with pytest.raises(ValidationError, match="Prepaid must be true or false"):
        services.customer_update_limits(customer=customer, prepaid=value)


def test_prepaid_is_not_a_token_limit(ddb, customer):
    issued = services.token_create(customer=customer)
    with pytest.raises(ValidationError, match="Unknown token limits: prepaid"):
        services.token_update_limits(token=issued.token, prepaid=True)


def test_token_budget_reaches_dynamodb_and_survives_rotation(ddb, customer, staff_user):
    issued = services.token_create(
        customer=customer, actor=staff_user, limits={"monthly_budget": "12.34"}
    )
    item = remote_token(ddb, issued.plaintext)
    assert item.monthly_budget_micros == 12_340_000 and item.has_limits
    assert AuditEvent.objects.get(action="token.create").after["monthly_budget"] == "12.34"
    token = services.token_update_limits(token=issued.token, monthly_budget="7.5")
    assert remote_token(ddb, issued.plaintext).monthly_budget_micros == 7_500_000
    event = AuditEvent.objects.get(action="token.limits")
    assert event.before["monthly_budget"] == "12.34" and event.after["monthly_budget"] == "7.50"
    rotated = services.token_rotate(token=token, grace_hours=1)
    assert rotated.token.monthly_budget == Decimal("7.50")
    assert remote_token(ddb, rotated.plaintext).monthly_budget_micros == 7_500_000
    services.token_update_limits(token=rotated.token, monthly_budget="none")
    assert remote_token(ddb, rotated.plaintext).monthly_budget_micros is None


def test_customer_users_keep_token_budgets_within_the_accounts(ddb, customer):
    services.customer_update_limits(customer=customer, monthly_budget="50")
    issued = services.token_create(customer=customer)
    with pytest.raises(ValidationError) as refused:
        services.token_update_limits(
            token=issued.token, within_customer=True, monthly_budget="50.01"
        )
    assert refused.value.messages == [
        "Monthly budget of a token can be at most the account's: 50.00 USD."
    ]
    with pytest.raises(ValidationError, match=r"at most the account's: 50\.00 USD"):
        services.token_create(
            customer=customer, within_customer=True, limits={"monthly_budget": "75"}
        )
    services.token_update_limits(token=issued.token, within_customer=True, monthly_budget="50")
    # The rule of the other token limits: staff may set any (the customer's budget refuses
    # first in the proxy), and lowering the customer's below a token's is allowed.
    services.token_update_limits(token=issued.token, monthly_budget="80")
    services.customer_update_limits(customer=customer, monthly_budget="10")
    # A customer without a budget: a customer user may give a token any budget.
    services.customer_update_limits(customer=customer, monthly_budget=None)
    services.token_update_limits(token=issued.token, within_customer=True, monthly_budget="900")


def test_reconciliation_compares_budgets_and_prepaid(ddb, customer):
    services.customer_update_limits(customer=customer, monthly_budget="30", prepaid=True)
    issued = services.token_create(customer=customer, limits={"monthly_budget": "5"})
    assert dynamodb_reconcile().repairs == []
    stale_customer = dataclasses.replace(
        contract.get_customer(ddb, str(customer.pk)),
        monthly_budget_micros=None,
        prepaid=False,
        version=customer.sync_version + 5,
    )
    assert contract.put_customer(ddb, stale_customer)
    stale_token = dataclasses.replace(
        remote_token(ddb, issued.plaintext),
        monthly_budget_micros=9,
        version=issued.token.sync_version + 5,
    )
    assert contract.put_token(ddb, stale_token)
    report = dynamodb_reconcile()
    assert any("differs in monthly_budget_micros, prepaid" in line for line in report.repairs)
    assert any("token" in line and "monthly_budget_micros" in line for line in report.repairs)
    item = contract.get_customer(ddb, str(customer.pk))
    assert item.monthly_budget_micros == 30_000_000 and item.prepaid is True
    assert remote_token(ddb, issued.plaintext).monthly_budget_micros == 5_000_000


# --- staff pages --------------------------------------------------------------------------------


def test_staff_limits_form_sets_budget_and_prepaid(staff_client, ddb, customer):
    url = reverse("staff:customer_limits", args=[customer.pk])
    page = staff_client.get(url)
    assert b"Monthly budget (USD)" in page.content and b"Prepaid" in page.content
    response = staff_client.post(url, {"monthly_budget": "1500.00", "prepaid": "on"})
    assert response.status_code == 302
    item = contract.get_customer(ddb, str(customer.pk))
    assert item.monthly_budget_micros == 1_500_000_000 and item.prepaid
    page = staff_client.get(url)
    assert b'value="1500.00"' in page.content
    for bad, message in [
        ("-3", b"must be more than 0"),
        ("12.345", b"whole number of cents"),
        ("NaN", b"at most 2 decimals"),
        ("1e999", b"at most 2 decimals"),
        ("5000000000", b"too large"),
        ("12\x00", b"Null characters are not allowed"),
    ]:
        refused = staff_client.post(url, {"monthly_budget": bad, "prepaid": "on"})
        assert refused.status_code == 200 and message in refused.content, bad
    # unticked: not prepaid any more
    staff_client.post(url, {"monthly_budget": "1500.00"})
    item = contract.get_customer(ddb, str(customer.pk))
    assert item.monthly_budget_micros == 1_500_000_000 and item.prepaid is False


def test_staff_detail_shows_budget_spend_and_prepaid(staff_client, ddb, customer):
    from datetime import UTC, datetime

    services.customer_update_limits(customer=customer, monthly_budget="50", prepaid=True)
    month = datetime.now(UTC).strftime("%Y-%m")
    ddb.put_item(
        TableName=contract.table_names().usage_counters,
        Item={
            "pk": {"S": f"CUST#{customer.pk}"},
            "sk": {"S": f"MONTH#{month}"},
            "requests": {"N": "3"},
            contract.SPEND_MICROS: {"N": "40123456"},
        },
    )
    page = staff_client.get(reverse("staff:customer_detail", args=[customer.pk]))
    text = page.content.decode()
    assert "40.12 USD" in text and "80% of 50.00 USD" in text
    assert "calls stop when the prepaid credit runs out" in text


def test_staff_detail_without_counters_still_renders(staff_client, customer, settings):
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens there
    services.customer_update_limits(customer=customer, monthly_budget="50")
    page = staff_client.get(reverse("staff:customer_detail", args=[customer.pk]))
    assert page.status_code == 200
    assert b"50.00 USD" in page.content and b"unavailable right now" in page.content


def test_staff_token_pages_set_a_token_budget(staff_client, ddb, customer):
    services.customer_update_limits(customer=customer, monthly_budget="100")
    url = reverse("staff:token_create", args=[customer.pk])
    assert b"Token&#x27;s monthly budget (USD)" in staff_client.get(url).content
    response = staff_client.post(
        url, {"label": "etl", "never_expires": "on", "monthly_budget": "25.50"}
    )
    assert response.status_code == 200
    item = remote_token(ddb, response.context["plaintext"])
    assert item.monthly_budget_micros == 25_500_000
    token = Token.objects.get(label="etl")
    limits_url = reverse("staff:token_limits", args=[customer.pk, token.pk])
    page = staff_client.get(limits_url)
    assert b'value="25.50"' in page.content and b"monthly budget 100.00 USD" in page.content
    assert staff_client.post(limits_url, {"monthly_budget": "30"}).status_code == 302
    assert remote_token(ddb, response.context["plaintext"]).monthly_budget_micros == 30_000_000
    detail = staff_client.get(reverse("staff:customer_detail", args=[customer.pk]))
    assert b"30.00 USD/month" in detail.content
    refused = staff_client.post(limits_url, {"monthly_budget": "-1"})
    assert refused.status_code == 400 and b"must be more than 0" in refused.content


def test_onboarding_sets_budget_and_prepaid(staff_client, ddb):
    response = staff_client.post(
        reverse("staff:customer_onboard"),
        {
            "name": "Initech",
            "contact_email": "it@initech.example",
            "user_email": "peter@initech.example",
            "token_label": "default",
            "monthly_budget": "250",
            "prepaid": "on",
            "tpm_limit": "9000",
        },
    )
    assert response.status_code == 200, response.content[:2000]
    customer = Customer.objects.get(name="Initech")
    assert customer.monthly_budget == Decimal("250.00") and customer.prepaid
    assert customer.tpm_limit == 9000
    item = contract.get_customer(ddb, str(customer.pk))
    assert item.monthly_budget_micros == 250_000_000 and item.prepaid


def test_bulk_set_limits_sets_the_budget(staff_client, ddb, customer, other_customer):
    response = staff_client.post(
        reverse("staff:customer_bulk"),
        {
            "action": "set_limits",
            "ids": [str(customer.pk), str(other_customer.pk)],
            "confirm": "1",
            "apply_monthly_budget": "on",
            "monthly_budget": "75.25",
        },
    )
    assert response.status_code == 302
    for c in (customer, other_customer):
        c.refresh_from_db()
        assert c.monthly_budget == Decimal("75.25") and c.prepaid is False
        assert contract.get_customer(ddb, str(c.pk)).monthly_budget_micros == 75_250_000


# --- the customer's own pages -----------------------------------------------------------------


def test_customers_set_token_budgets_within_the_accounts(customer_client, ddb, customer):
    services.customer_update_limits(customer=customer, monthly_budget="50")
    issued = services.token_create(customer=customer, label="mobile")
    url = reverse("customer:customer_token_limits", args=[issued.token.pk])
    page = customer_client.get(url)
    assert b"monthly budget 50.00 USD" in page.content
    refused = customer_client.post(url, {"monthly_budget": "50.01"})
    assert refused.status_code == 400
    assert b"at most the account&#x27;s: 50.00 USD" in refused.content
    assert remote_token(ddb, issued.plaintext).monthly_budget_micros is None
    assert customer_client.post(url, {"monthly_budget": "20"}).status_code == 302
    assert remote_token(ddb, issued.plaintext).monthly_budget_micros == 20_000_000
    tokens = customer_client.get(reverse("customer:customer_tokens"))
    assert b"20.00 USD/month" in tokens.content
    created = customer_client.post(
        reverse("customer:customer_tokens"), {"label": "x", "monthly_budget": "60"}
    )
    assert created.status_code == 400 and Token.objects.count() == 1


def test_customers_cannot_set_their_own_budget_or_prepaid(customer_client, ddb, customer):
    url = reverse("staff:customer_limits", args=[customer.pk])
    assert customer_client.post(url, {"monthly_budget": "1", "prepaid": "on"}).status_code == 403
    customer.refresh_from_db()
    assert customer.monthly_budget is None and customer.prepaid is False


# --- the command ----------------------------------------------------------------------------------


def run(*args):
    out = StringIO()
    call_command("customers", *args, stdout=out)
    return out.getvalue()


def test_update_limits_sets_budget_and_prepaid(ddb, customer):
    out = run(
        "update-limits", "--customer-id", str(customer.pk), "--monthly-budget", "12.34", "--prepaid"
    )
    assert "monthly budget 12.34 USD, prepaid yes" in out
    item = contract.get_customer(ddb, str(customer.pk))
    assert item.monthly_budget_micros == 12_340_000 and item.prepaid is True
    run("update-limits", "--customer-id", str(customer.pk), "--no-prepaid")
    item = contract.get_customer(ddb, str(customer.pk))
    assert item.prepaid is False and item.monthly_budget_micros == 12_340_000  # kept
    run("update-limits", "--customer-id", str(customer.pk), "--monthly-budget", "none")
    assert contract.get_customer(ddb, str(customer.pk)).monthly_budget_micros is None
    event = AuditEvent.objects.filter(action="customer.limits").latest("id")
    assert event.actor_label.startswith("manage.py customers")


@pytest.mark.parametrize(
    ("value", "message"),
    [("-1", "more than 0"), ("NaN", "2 decimals"), ("1e999", "2 decimals"), ("0.001", "cents")],
)
def test_the_command_refuses_hostile_budgets(ddb, customer, value, message):
    with pytest.raises(CommandError, match=message):
        run("update-limits", "--customer-id", str(customer.pk), "--monthly-budget", value)
    with pytest.raises(CommandError, match=message):
        run("create-token", "--customer-id", str(customer.pk), "--monthly-budget", value)
    customer.refresh_from_db()
    assert customer.monthly_budget is None and not customer.tokens.exists()


def test_create_with_budget_and_token_budgets_from_the_command(ddb):
    out = run(
        "create",
        "--name",
        "Initech",
        "--email",
        "it@initech.example",
        "--monthly-budget",
        "99.99",
        "--prepaid",
    )
    customer = Customer.objects.get(name="Initech")
    assert customer.monthly_budget == Decimal("99.99") and customer.prepaid
    assert contract.get_customer(ddb, str(customer.pk)).monthly_budget_micros == 99_990_000
    plaintext = out.split("Bearer token: ")[1].split()[0]
    token = customer.tokens.get()
    out = run(
        "update-token",
        "--customer-id",
        str(customer.pk),
        "--token-id",
        str(token.pk),
        "--monthly-budget",
        "10",
    )
    assert "10.00 USD/month" in out
    assert remote_token(ddb, plaintext).monthly_budget_micros == 10_000_000
