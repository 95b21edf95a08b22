import dataclasses

import pytest

from customers import services
from customers.models import AuditEvent, SyncOutbox
from customers.reconcile import dynamodb_reconcile
from proxy import contract

from .conftest import remote_token

pytestmark = pytest.mark.django_db


def test_refills_an_empty_dynamodb(ddb, customer, other_customer):
    # Rows created by the fixtures never went through services: DynamoDB knows nothing.
    report = dynamodb_reconcile()
    assert len(report.repairs) == 2
    assert contract.get_customer(ddb, str(customer.pk)).name == customer.name
    assert dynamodb_reconcile().repairs == []


def test_repairs_drift_and_missing_tokens(ddb, customer, issued):
    services.customer_update_limits(customer=customer, daily_request_limit=10)
    item = contract.get_customer(ddb, str(customer.pk))
    # Someone edits DynamoDB by hand, at a higher version.
    contract.put_customer(
        ddb, dataclasses.replace(item, daily_request_limit=99999, version=item.version + 5)
    )
    # And the token item disappears.
    table = contract.table_names().tokens
    ddb.delete_item(TableName=table, Key={"token_hash": {"S": issued.token.token_hash}})

    report = dynamodb_reconcile()
    assert any("differs in daily_request_limit" in r for r in report.repairs)
    assert any("missing in DynamoDB" in r for r in report.repairs)
    assert contract.get_customer(ddb, str(customer.pk)).daily_request_limit == 10
    assert remote_token(ddb, issued.plaintext).status == "active"
    repairs = AuditEvent.objects.filter(action="sync.repair", object_type__in=["customer", "token"])
    assert repairs.count() == 2
    assert dynamodb_reconcile().repairs == []
    assert not SyncOutbox.objects.filter(delivered_at__isnull=True).exists()


def test_unknown_tokens_are_revoked(ddb, customer):
    stray = contract.generate_token()
    contract.put_token(
        ddb,
        contract.TokenItem(
            token_hash=contract.hash_token(stray),
            version=1,
            token_id="not-in-the-portal",
            customer_id=str(customer.pk),
            display_prefix=contract.token_display_prefix(stray),
            status="active",
            expires_at=None,
            created_at=0,
        ),
    )
    report = dynamodb_reconcile()
    assert any("not-in-the-portal" in r for r in report.repairs)
    assert all(contract.hash_token(stray) not in r for r in report.repairs)
    assert remote_token(ddb, stray).status == "revoked"


def test_dry_run_changes_nothing(ddb, customer):
    report = dynamodb_reconcile(dry_run=True)
    assert len(report.repairs) == 1
    assert contract.get_customer(ddb, str(customer.pk)) is None


def test_dead_tokens_dropped_by_ttl_are_left_alone(ddb, customer, issued):
    services.token_revoke(token=issued.token)
    table = contract.table_names().tokens
    ddb.delete_item(TableName=table, Key={"token_hash": {"S": issued.token.token_hash}})
    dynamodb_reconcile()  # the customer item itself was never synced by the fixture
    assert dynamodb_reconcile().repairs == []
    assert remote_token(ddb, issued.plaintext) is None


def test_float_and_nested_model_params_round_trip_without_drift(ddb, customer):
    params = {"temperature": 0.7, "top_p": 1, "stop": ["\n\n"], "extra": {"a": True}}
    services.customer_update_limits(customer=customer, default_model_params=params)
    assert contract.get_customer(ddb, str(customer.pk)).default_model_params == params
    assert dynamodb_reconcile().repairs == []
