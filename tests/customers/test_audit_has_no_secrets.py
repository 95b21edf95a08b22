"""No token and no token hash ever reaches the audit log, the outbox payload or a log line."""

import json
import logging
from io import StringIO

import pytest
from django.core.management import call_command

from customers import services
from customers.models import AuditEvent, SyncOutbox
from customers.reconcile import dynamodb_reconcile
from proxy import contract

pytestmark = pytest.mark.django_db


def test_no_token_or_hash_in_audit_or_logs(ddb, settings, customer, staff_user, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = []
    first = services.token_create(customer=customer, actor=staff_user, ip="127.0.0.9")
    secrets.append(first.plaintext)
    rotated = services.token_rotate(token=first.token, actor=staff_user)
    secrets.append(rotated.plaintext)
    services.token_revoke(token=rotated.token, actor=staff_user)
    imported = services.token_create(customer=customer, plaintext="Imported-Token-0123456789abcd")
    secrets.append(imported.plaintext)
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"
    failing = services.token_create(customer=customer, label="while down")
    secrets.append(failing.plaintext)
    settings.AWS_ENDPOINT_URL = None
    call_command(
        "customers",
        "rotate-token",
        "--customer-id",
        str(customer.pk),
        "--token-prefix",
        failing.token.display_prefix,
        stdout=StringIO(),
    )
    dynamodb_reconcile()

    hashes = [contract.hash_token(s) for s in secrets]
    audit = json.dumps(
        list(AuditEvent.objects.values("actor_label", "object_id", "before", "after")),
        default=str,
    )
    outbox = json.dumps(list(SyncOutbox.objects.values("payload", "last_error")), default=str)
    assert AuditEvent.objects.filter(object_type="token").count() >= 5
    assert AuditEvent.objects.filter(source_ip="127.0.0.9").count() == 1
    for needle in secrets + hashes:
        assert needle not in caplog.text
        assert needle not in audit
        assert needle not in outbox
