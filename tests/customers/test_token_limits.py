"""A token's own limits (inside its customer's) and tokens per minute, in the portal: services,
outbox to DynamoDB, audit, staff and customer pages, the `customers` command."""

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from core.model_names import display_name
from customers import services
from customers.models import AuditEvent, Token
from customers.reconcile import dynamodb_reconcile
from proxy import contract

from .conftest import remote_token

pytestmark = pytest.mark.django_db

LIMITS = {
    "daily_request_limit": 100,
    "rpm_limit": 10,
    "monthly_token_quota": 1_000_000,
    "tpm_limit": 5000,
    "allowed_models": ["nova-lite"],
}


# --- services and the outbox ----------------------------------------------------------------


def test_limits_on_create_reach_dynamodb_and_the_audit(ddb, customer, staff_user):
    issued = services.token_create(customer=customer, actor=staff_user, limits=LIMITS)
    token = issued.token
    assert (token.daily_request_limit, token.tpm_limit) == (100, 5000)
    item = remote_token(ddb, issued.plaintext)
    assert item.daily_request_limit == 100 and item.rpm_limit == 10
    assert item.monthly_token_quota == 1_000_000 and item.tpm_limit == 5000
    assert item.allowed_models == ["nova-lite"] and item.has_limits
    event = AuditEvent.objects.get(action="token.create")
    assert event.after["tpm_limit"] == 5000 and event.after["allowed_models"] == ["nova-lite"]
    assert issued.plaintext not in str(event.after) and token.token_hash not in str(event.after)


def test_update_limits_changes_only_what_is_sent_and_is_audited(ddb, customer, staff_user):
    issued = services.token_create(customer=customer, limits={"daily_request_limit": 5})
    token = services.token_update_limits(
        token=issued.token, actor=staff_user, ip="198.51.100.4", source="staff portal", rpm_limit=7
    )
    assert token.daily_request_limit == 5 and token.rpm_limit == 7
    item = remote_token(ddb, issued.plaintext)
    assert item.rpm_limit == 7 and item.daily_request_limit == 5
    assert item.version == token.sync_version
    event = AuditEvent.objects.get(action="token.limits")
    assert event.before == {"masked": token.masked, "rpm_limit": None}
    assert event.after == {"masked": token.masked, "rpm_limit": 7}
    assert event.actor == staff_user and event.source_ip == "198.51.100.4"
    # the same values again: nothing to record, nothing to deliver
    version = token.sync_version
    services.token_update_limits(token=token, rpm_limit="7")
    token.refresh_from_db()
    assert token.sync_version == version
    assert AuditEvent.objects.filter(action="token.limits").count() == 1
    # "none" clears a number; an empty list gives the token the customer's models
    services.token_update_limits(token=token, rpm_limit="none", allowed_models="")
    item = remote_token(ddb, issued.plaintext)
    assert item.rpm_limit is None and item.allowed_models == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("daily_request_limit", -5, "must be a positive number"),
        ("daily_request_limit", 0, "must be a positive number"),
        ("rpm_limit", "1.5", "must be a whole number"),
        ("rpm_limit", "ten", "must be a whole number"),
        ("daily_request_limit", "12\x00", "must be a whole number"),
        ("daily_request_limit", 10**13, "too large"),
        ("rpm_limit", 10**13, "too large"),
        ("tpm_limit", 10**12 + 1, "too large"),
        ("tpm_limit", -1, "must be a positive number"),
        ("monthly_token_quota", 10**30, "too large"),
        ("monthly_token_quota", 10**12 + 1, "too large: at most 1,000,000,000,000"),
        ("monthly_token_quota", "1e6", "must be a whole number"),
        ("allowed_models", ["gpt-99-imaginary"], "Unknown model “gpt-99-imaginary”"),
        ("allowed_models", ["nova\x00lite"], "is not a model alias or model id"),
    ],
)
def test_hostile_values_are_refused_with_a_clear_message(ddb, customer, field, value, message):
    issued = services.token_create(customer=customer)
    with pytest.raises(ValidationError) as refused:
        services.token_update_limits(token=issued.token, **{field: value})
    assert message in " ".join(refused.value.messages)
    with pytest.raises(ValidationError):
        services.token_create(customer=customer, limits={field: value})
    assert Token.objects.count() == 1


def test_unknown_limit_names_are_refused(ddb, customer):
    issued = services.token_create(customer=customer)
    with pytest.raises(ValidationError, match="Unknown token limits: ip_allowlist"):
        services.token_update_limits(token=issued.token, ip_allowlist=["10.0.0.0/8"])


def test_a_tokens_models_must_be_among_the_customers(ddb, customer):
    services.customer_update_limits(customer=customer, allowed_models=["nova-lite", "haiku"])
    issued = services.token_create(customer=customer)
    with pytest.raises(ValidationError) as refused:
        services.token_update_limits(token=issued.token, allowed_models=["nova-pro", "haiku"])
    (message,) = refused.value.messages
    assert message == (
        "“nova-pro” is not among the account's allowed models (nova-lite, haiku): "
        "a token's models can only narrow the account's."
    )
    # the same model by another name (id, alias) is the same model; the sandboxes are free
    services.token_update_limits(
        token=issued.token,
        allowed_models=["amazon.nova-lite-v1:0", "claude-3-haiku", "sandbox.echo-v1"],
    )
    # a customer allowing every model: any catalog model
    services.customer_update_limits(customer=customer, allowed_models=[])
    services.token_update_limits(token=issued.token, allowed_models=["nova-pro"])


def test_customer_users_stay_within_the_customers_limits(ddb, customer):
    services.customer_update_limits(customer=customer, daily_request_limit=50, tpm_limit=1000)
    issued = services.token_create(customer=customer)
    with pytest.raises(ValidationError, match="at most the account's: 50"):
        services.token_update_limits(
            token=issued.token, within_customer=True, daily_request_limit=51
        )
    with pytest.raises(ValidationError, match="Tokens per minute of a token"):
        services.token_create(customer=customer, within_customer=True, limits={"tpm_limit": 2000})
    # within the customer's, or where the customer has no limit: accepted
    services.token_update_limits(
        token=issued.token, within_customer=True, daily_request_limit=50, rpm_limit=99
    )
    # staff may set any (the customer's limit refuses first in the proxy)
    services.token_update_limits(token=issued.token, daily_request_limit=5000)


def test_revoked_and_expired_tokens_keep_their_limits(ddb, customer):
    issued = services.token_create(customer=customer)
    services.token_revoke(token=issued.token)
    with pytest.raises(ValidationError, match="This token is revoked"):
        services.token_update_limits(token=issued.token, rpm_limit=5)


def test_rotation_keeps_the_limits(ddb, customer):
    old = services.token_create(customer=customer, limits=LIMITS)
    new = services.token_rotate(token=old.token, grace_hours=1)
    assert new.token.tpm_limit == 5000 and new.token.allowed_models == ["nova-lite"]
    assert remote_token(ddb, new.plaintext).daily_request_limit == 100


def test_customer_tpm_limit(ddb, customer, staff_user):
    services.customer_update_limits(customer=customer, actor=staff_user, tpm_limit="20000")
    assert contract.get_customer(ddb, str(customer.pk)).tpm_limit == 20000
    event = AuditEvent.objects.filter(action="customer.limits").latest("id")
    assert event.after == {"tpm_limit": 20000}
    with pytest.raises(ValidationError, match="Tokens per minute is too large"):
        services.customer_update_limits(customer=customer, tpm_limit=10**13)


def test_reconciliation_compares_the_new_fields(ddb, customer):
    services.customer_update_limits(customer=customer, tpm_limit=300)
    issued = services.token_create(customer=customer, limits={"rpm_limit": 4})
    assert dynamodb_reconcile().repairs == []
    # an item without the token's limits (as an older portal wrote it) is repaired
    import dataclasses

    stale = dataclasses.replace(
        remote_token(ddb, issued.plaintext), rpm_limit=None, version=issued.token.sync_version + 5
    )
    assert contract.put_token(ddb, stale)
    report = dynamodb_reconcile()
    assert any("differs in rpm_limit" in line for line in report.repairs)
    assert remote_token(ddb, issued.plaintext).rpm_limit == 4


# --- staff pages --------------------------------------------------------------------------------


def test_staff_create_a_token_with_limits(staff_client, ddb, customer):
    url = reverse("staff:token_create", args=[customer.pk])
    page = staff_client.get(url)
    assert b"Token&#x27;s tokens per minute" in page.content
    response = staff_client.post(
        url,
        {
            "label": "etl",
            "never_expires": "on",
            "daily_request_limit": "30",
            "tpm_limit": "4000",
            "allowed_models": ["nova-lite"],
        },
    )
    assert response.status_code == 200
    item = remote_token(ddb, response.context["plaintext"])
    assert item.daily_request_limit == 30 and item.tpm_limit == 4000
    assert item.allowed_models == ["nova-lite"]


def test_staff_token_limits_page(staff_client, ddb, customer):
    services.customer_update_limits(customer=customer, allowed_models=["nova-lite", "nova-pro"])
    issued = services.token_create(customer=customer, label="etl")
    detail = staff_client.get(reverse("staff:customer_detail", args=[customer.pk]))
    url = reverse("staff:token_limits", args=[customer.pk, issued.token.pk])
    assert url.encode() in detail.content and b"the customer's" in detail.content
    page = staff_client.get(url)
    assert page.status_code == 200
    assert b"amazon.nova-lite-v1:0" in page.content
    assert b"anthropic.claude-3-haiku" not in page.content  # only the customer's models
    response = staff_client.post(url, {"rpm_limit": "12", "allowed_models": ["nova-pro"]})
    assert response.status_code == 302
    item = remote_token(ddb, issued.plaintext)
    assert item.rpm_limit == 12 and item.allowed_models == ["nova-pro"]
    detail = staff_client.get(reverse("staff:customer_detail", args=[customer.pk]))
    # the page names the model as people read it; the command prints the id its options take
    assert f"12 requests/min; models: {display_name('nova-pro')}".encode() in detail.content
    assert b"models: nova-pro" not in detail.content
    for bad, message in [
        ({"rpm_limit": "-1"}, b"must be a positive number"),
        ({"tpm_limit": "99999999999999"}, b"too large"),
        ({"daily_request_limit": "1.5"}, b"whole number"),
        ({"allowed_models": "claude-3-haiku"}, b"not among the account"),
    ]:
        refused = staff_client.post(url, bad)
        assert refused.status_code == 400 and message in refused.content, bad
    assert remote_token(ddb, issued.plaintext).rpm_limit == 12


def test_staff_limits_form_sets_tokens_per_minute(staff_client, ddb, customer):
    url = reverse("staff:customer_limits", args=[customer.pk])
    assert b"Tokens per minute" in staff_client.get(url).content
    response = staff_client.post(url, {"tpm_limit": "7000"})
    assert response.status_code == 302
    assert contract.get_customer(ddb, str(customer.pk)).tpm_limit == 7000
    refused = staff_client.post(url, {"tpm_limit": "-3"})
    assert b"must be a positive number" in refused.content


# --- the customer's own pages -----------------------------------------------------------------


def test_customers_set_limits_on_their_own_tokens_within_the_accounts(
    customer_client, ddb, customer
):
    services.customer_update_limits(customer=customer, daily_request_limit=100)
    issued = services.token_create(customer=customer, label="mobile")
    page = customer_client.get(reverse("customer:customer_tokens"))
    url = reverse("customer:customer_token_limits", args=[issued.token.pk])
    assert url.encode() in page.content and b"the account's" in page.content
    assert customer_client.get(url).status_code == 200
    refused = customer_client.post(url, {"daily_request_limit": "101"})
    assert refused.status_code == 400
    assert b"at most the account&#x27;s: 100" in refused.content
    response = customer_client.post(url, {"daily_request_limit": "40", "tpm_limit": "900"})
    assert response.status_code == 302
    item = remote_token(ddb, issued.plaintext)
    assert item.daily_request_limit == 40 and item.tpm_limit == 900
    event = AuditEvent.objects.get(action="token.limits")
    assert event.actor_label.endswith("via customer portal")
    page = customer_client.get(reverse("customer:customer_tokens"))
    assert b"40 requests/day; 900 tokens/min" in page.content


def test_customers_create_tokens_with_limits(customer_client, ddb, customer):
    services.customer_update_limits(customer=customer, rpm_limit=20)
    url = reverse("customer:customer_tokens")
    refused = customer_client.post(url, {"label": "x", "rpm_limit": "21"})
    assert refused.status_code == 400 and Token.objects.count() == 0
    response = customer_client.post(url, {"label": "x", "rpm_limit": "20"})
    assert response.status_code == 200
    assert remote_token(ddb, response.context["issued"].plaintext).rpm_limit == 20


def test_another_customers_token_is_404(customer_client, ddb, other_customer):
    issued = services.token_create(customer=other_customer)
    url = reverse("customer:customer_token_limits", args=[issued.token.pk])
    assert customer_client.post(url, {"rpm_limit": "1"}).status_code == 404
    issued.token.refresh_from_db()
    assert issued.token.rpm_limit is None


def test_customer_users_cannot_open_the_staff_token_limits_page(customer_client, ddb, customer):
    issued = services.token_create(customer=customer)
    url = reverse("staff:token_limits", args=[customer.pk, issued.token.pk])
    assert customer_client.post(url, {"rpm_limit": "1"}).status_code in (302, 403, 404)
    issued.token.refresh_from_db()
    assert issued.token.rpm_limit is None


# --- the command ----------------------------------------------------------------------------------


def run(*args):
    out = StringIO()
    call_command("customers", *args, stdout=out)
    return out.getvalue()


def test_create_token_and_update_token_limits_from_the_command(ddb, customer):
    services.customer_update_limits(customer=customer, allowed_models=["nova-lite", "nova-pro"])
    out = run(
        "create-token",
        "--customer-id",
        str(customer.pk),
        "--label",
        "reports",
        "--daily-request-limit",
        "25",
        "--tpm-limit",
        "3000",
        "--allowed-models",
        "nova-lite",
    )
    lines = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    plaintext = lines["Bearer token"]
    item = remote_token(ddb, plaintext)
    assert item.daily_request_limit == 25 and item.tpm_limit == 3000
    assert item.allowed_models == ["nova-lite"]
    assert "25 requests/day" in out
    token = Token.objects.get(pk=lines["Token ID"])
    out = run(
        "update-token",
        "--customer-id",
        str(customer.pk),
        "--token-id",
        str(token.pk),
        "--rpm-limit",
        "6",
        "--monthly-token-quota",
        "90000",
        "--daily-request-limit",
        "none",
    )
    item = remote_token(ddb, plaintext)
    assert item.rpm_limit == 6 and item.monthly_token_quota == 90000
    assert item.daily_request_limit is None
    assert "6 requests/min" in out
    event = AuditEvent.objects.filter(action="token.limits").latest("id")
    assert event.actor is None and event.actor_label.startswith("manage.py customers")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rpm-limit", "-4"], "must be a positive number"),
        (["--tpm-limit", "10000000000000"], "too large"),
        (["--daily-request-limit", "3.5"], "whole number"),
        (["--allowed-models", "claude-3-opus"], "not among the account"),
        ([], "Give --token to replace the token"),
    ],
)
def test_update_token_refuses_hostile_values(ddb, customer, args, message):
    services.customer_update_limits(customer=customer, allowed_models=["nova-lite"])
    services.token_create(customer=customer)
    with pytest.raises(CommandError, match=message):
        run("update-token", "--customer-id", str(customer.pk), *args)


def test_update_limits_sets_tokens_per_minute(ddb, customer):
    out = run(
        "update-limits", "--customer-id", str(customer.pk), "--daily-limit", "9", "--tpm", "777"
    )
    assert "tpm 777" in out
    assert contract.get_customer(ddb, str(customer.pk)).tpm_limit == 777
    with pytest.raises(CommandError, match="Tokens per minute"):
        run("update-limits", "--customer-id", str(customer.pk), "--daily-limit", "9", "--tpm", "x")


def test_update_token_with_a_replacement_moves_the_limits_to_it(ddb, customer):
    old = services.token_create(customer=customer, limits={"tpm_limit": 50})
    given = "ReplacementToken0123456789abcdef"
    run(
        "update-token",
        "--customer-id",
        str(customer.pk),
        "--token",
        given,
        "--rpm-limit",
        "3",
    )
    item = remote_token(ddb, given)
    assert item.tpm_limit == 50 and item.rpm_limit == 3  # kept, and the new one set
    assert remote_token(ddb, old.plaintext).status == "revoked"
