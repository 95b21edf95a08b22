"""An imported token shows at most its first 4 and last 4 characters (pages, audit, DynamoDB,
outbox); one shorter than 20 characters is refused with a clear message."""

import importlib
import json
from io import StringIO

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from customers import services
from customers.models import AuditEvent, SyncOutbox, Token
from customers.reconcile import dynamodb_reconcile
from proxy import contract

from .conftest import remote_token

IMPORTED = "Seed2Tok3nABCDEFwxyz"  # 20 characters, as `customers create-token --token` might bring
assert len(IMPORTED) == 20


def _everything_stored(customer) -> str:
    """Every place a masked form can reach, as one text."""
    return json.dumps(
        [
            list(Token.objects.values("display_prefix", "last4")),
            list(AuditEvent.objects.filter(customer=customer).values("before", "after")),
            list(SyncOutbox.objects.values("payload", "last_error")),
        ],
        default=str,
    )


def test_imported_token_shows_4_leading_and_4_trailing_characters(ddb, customer, staff_client):
    issued = services.token_create(customer=customer, label="legacy", plaintext=IMPORTED)

    token = Token.objects.get(pk=issued.token.pk)
    assert (token.display_prefix, token.last4, token.masked) == ("Seed", "wxyz", "Seed…wxyz")
    assert remote_token(ddb, IMPORTED).display_prefix == "Seed"
    audit = AuditEvent.objects.get(object_type="token", action="token.create")
    assert audit.after["masked"] == "Seed…wxyz"
    page = staff_client.get(f"/staff/customers/{customer.pk}/").content.decode()
    assert "Seed…wxyz" in page
    stored = _everything_stored(customer)
    for shown_too_much in (IMPORTED[:5], IMPORTED[-5:]):
        assert shown_too_much not in page and shown_too_much not in stored


def test_our_own_tokens_keep_their_longer_prefix(ddb, customer):
    issued = services.token_create(customer=customer)
    assert issued.token.display_prefix == issued.plaintext[:8]
    assert issued.token.display_prefix.startswith(contract.TOKEN_PREFIX)
    assert issued.token.last4 == issued.plaintext[-4:]


@pytest.mark.django_db
def test_an_imported_token_shorter_than_20_characters_is_refused(customer):
    with pytest.raises(ValidationError, match="at least 20 characters"):
        services.token_create(customer=customer, plaintext=IMPORTED[:19])
    with pytest.raises(CommandError, match="at least 20 characters"):
        call_command(
            "customers",
            "create",
            "--name",
            "Initech",
            "--email",
            "it@initech.example",
            "--token",
            IMPORTED[:19],
            stdout=StringIO(),
        )
    assert not Token.objects.exists()


def test_existing_imported_tokens_are_shortened_everywhere(ddb, synced_customer, monkeypatch):
    """What the earlier version stored (8 leading characters in the row, the DynamoDB item,
    the outbox and the audit trail) is cut to 4 by the migration, and reconciliation rewrites
    the DynamoDB item."""
    customer = synced_customer
    with monkeypatch.context() as earlier_version:
        earlier_version.setattr(contract, "token_display_prefix", lambda token: token[:8])
        issued = services.token_create(customer=customer, label="legacy", plaintext=IMPORTED)
        services.token_revoke(token=issued.token)  # one more audit event and outbox row
    ours = services.token_create(customer=customer, label="ours")
    old_prefix = IMPORTED[:8]
    assert remote_token(ddb, IMPORTED).display_prefix == old_prefix
    assert old_prefix in _everything_stored(customer)

    migration = importlib.import_module("customers.migrations.0003_imported_token_display_prefix")
    migration.shorten(django_apps, None)

    assert Token.objects.get(pk=issued.token.pk).masked == "Seed…wxyz"
    assert Token.objects.get(pk=ours.token.pk).display_prefix == ours.plaintext[:8]
    assert old_prefix not in _everything_stored(customer)
    created = AuditEvent.objects.get(object_id=str(issued.token.pk), action="token.create")
    assert created.after["masked"] == "Seed…wxyz"
    report = dynamodb_reconcile()
    assert remote_token(ddb, IMPORTED).display_prefix == "Seed"
    assert remote_token(ddb, ours.plaintext).display_prefix == ours.plaintext[:8]
    assert len(report.repairs) == 1 and old_prefix not in report.repairs[0]
