"""A token's allowed models, set by the customer on their own tokens page and by
`manage.py customers`: a model within the account's list is saved and reaches the proxy's item;
an id the catalog does not know, or a model outside the account's list, is refused with a clear
message and nothing is saved (neither the row nor the DynamoDB item)."""

from io import StringIO

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError
from django.urls import reverse

from customers import services
from customers.models import AuditEvent, Token

from .conftest import remote_token

pytestmark = pytest.mark.django_db

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def _limits_url(token):
    return reverse("customer:customer_token_limits", args=[token.pk])


def _saved(ddb, issued):
    issued.token.refresh_from_db()
    return issued.token.allowed_models, remote_token(ddb, issued.plaintext).allowed_models


# --- the customer's own tokens page -----------------------------------------------------------


def test_a_customer_narrows_a_token_to_one_of_the_accounts_models(customer_client, ddb, customer):
    services.customer_update_limits(customer=customer, allowed_models=["nova-lite", "haiku"])
    issued = services.token_create(customer=customer, label="reports")
    url = _limits_url(issued.token)
    html = customer_client.get(url).content.decode()
    assert 'value="nova-lite"' in html or "amazon.nova-lite-v1:0" in html  # offered
    response = customer_client.post(url, {"allowed_models": ["haiku"]})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _saved(ddb, issued) == (["haiku"], ["haiku"])  # the row and the proxy's item
    event = AuditEvent.objects.get(action="token.limits")
    assert event.after["allowed_models"] == ["haiku"]
    assert event.actor_label.endswith("via customer portal")


def test_an_unknown_catalog_id_is_refused_and_nothing_is_saved(customer_client, ddb, customer):
    issued = services.token_create(customer=customer, label="reports")  # account: every model
    response = customer_client.post(
        _limits_url(issued.token), {"allowed_models": [HAIKU, "gpt-99-imaginary"]}
    )
    assert response.status_code == 400
    (message,) = response.context["form"].errors["allowed_models"]
    assert message.startswith("Unknown model “gpt-99-imaginary”")
    assert "price book" in message and f"“{HAIKU}”" not in message  # the known one is not named
    assert "gpt-99-imaginary" in response.content.decode()  # shown beside the field
    assert _saved(ddb, issued) == ([], [])
    assert not AuditEvent.objects.filter(action="token.limits").exists()


def test_a_model_outside_the_accounts_list_is_refused(customer_client, ddb, customer):
    services.customer_update_limits(customer=customer, allowed_models=["nova-lite"])
    issued = services.token_create(customer=customer, label="reports")
    response = customer_client.post(_limits_url(issued.token), {"allowed_models": ["nova-pro"]})
    assert response.status_code == 400
    (message,) = response.context["form"].errors["allowed_models"]
    assert message == (
        "“nova-pro” is not among the account's allowed models (nova-lite): "
        "a token's models can only narrow the account's."
    )
    assert _saved(ddb, issued) == ([], [])
    assert not AuditEvent.objects.filter(action="token.limits").exists()


def test_hostile_model_entries_are_refused_not_a_500(customer_client, ddb, customer):
    issued = services.token_create(customer=customer, label="reports")
    for junk in ["haiku\x00", "x" * 5000, "<script>", "-1"]:
        response = customer_client.post(_limits_url(issued.token), {"allowed_models": [junk]})
        assert response.status_code == 400, junk
        assert response.context["form"].errors["allowed_models"]
    assert _saved(ddb, issued) == ([], [])


# --- manage.py customers ------------------------------------------------------------------------


def _argv(*args):
    return ["manage.py", "customers", *args]


@pytest.mark.parametrize("subcommand", ["update-token", "create-token"])
def test_the_command_refuses_an_unknown_catalog_id_in_one_line(ddb, customer, capsys, subcommand):
    """The account allows every model, so only the catalog can refuse it."""
    issued = services.token_create(customer=customer, label="reports")
    target = ["--token-id", str(issued.token.pk)] if subcommand == "update-token" else []

    def args(models):
        return ["--customer-id", str(customer.pk), *target, "--allowed-models", models]

    with pytest.raises(SystemExit) as exit_:
        execute_from_command_line(_argv(subcommand, *args("nova-lite,gpt-99-imaginary")))
    assert exit_.value.code != 0
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "CommandError" in line]  # one line, no trace
    assert line.startswith("CommandError: Unknown model “gpt-99-imaginary”: allowed models are")
    assert "price book" in line and "“nova-lite”" not in line
    assert 'File "' not in err.split("CommandError")[0][-200:]  # no traceback before it
    assert Token.objects.count() == 1  # create-token created none
    assert _saved(ddb, issued) == ([], [])
    assert not AuditEvent.objects.filter(action="token.limits").exists()
    # the same command with catalog models only goes through
    call_command("customers", subcommand, *args("nova-lite,haiku"), stdout=StringIO())
    if subcommand == "update-token":
        assert _saved(ddb, issued) == (["nova-lite", "haiku"], ["nova-lite", "haiku"])
    else:
        created = Token.objects.exclude(pk=issued.token.pk).get()
        assert created.allowed_models == ["nova-lite", "haiku"]


def test_the_command_refuses_a_model_outside_the_accounts_list(ddb, customer):
    services.customer_update_limits(customer=customer, allowed_models=["nova-lite"])
    args = ["--customer-id", str(customer.pk), "--allowed-models", "nova-pro"]
    with pytest.raises(CommandError, match="“nova-pro” is not among the account's allowed"):
        call_command("customers", "create-token", *args)
    assert not Token.objects.exists()
