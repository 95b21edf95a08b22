"""The DynamoDB contract: token format, versioned idempotent puts, round trips, counters."""

import time
from datetime import date

import boto3
import pytest
from moto import mock_aws

from proxy import contract


@pytest.fixture
def dynamodb(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        contract.create_tables(client)
        yield client


def test_generated_tokens_have_prefix_and_valid_checksum():
    tokens = {contract.generate_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert token.startswith("bup_") and len(token) == 4 + 32 + 6
        assert contract.token_has_valid_checksum(token)
        assert contract.token_is_well_formed(token)


def test_a_typo_breaks_the_checksum():
    token = contract.generate_token()
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    assert not contract.token_has_valid_checksum(flipped)
    assert not contract.token_is_well_formed(flipped)


@pytest.mark.parametrize(
    ("token", "ok"),
    [
        ("q9Yl0bFv1f4sM0d3jz2p5t8k1x0c7v6b5n4m3l2k1j0=", True),  # openssl rand -base64 32
        ("short", False),
        ("has space in the middle of it", False),
        ("x" * 257, False),
    ],
)
def test_imported_tokens(token, ok):
    assert contract.token_is_well_formed(token) is ok


def test_imported_tokens_show_at_most_4_leading_and_4_trailing_characters():
    imported = "Seed2Tok3nABCDEFwxyz"  # the shortest accepted: IMPORTED_TOKEN_MIN (20)
    assert len(imported) == contract.IMPORTED_TOKEN_MIN == 20
    assert contract.token_is_well_formed(imported)
    assert not contract.token_is_well_formed(imported[:19])
    assert contract.token_display_prefix(imported) == "Seed"
    assert contract.token_last4(imported) == "wxyz"
    ours = contract.generate_token()  # `bup_` + 4 of 38 random and checksum characters
    assert contract.token_display_prefix(ours) == ours[:8]


def test_hash_is_sha256_hex():
    assert contract.hash_token("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_create_tables_is_idempotent(dynamodb):
    assert contract.create_tables(dynamodb) == []
    names = contract.table_names()
    assert set(dynamodb.list_tables()["TableNames"]) == {
        names.customers,
        names.tokens,
        names.usage_counters,
        names.prices,
    }
    ttl = dynamodb.describe_time_to_live(TableName=names.tokens)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "ttl"
    # Price items never expire: the portal replaces them.
    prices = dynamodb.describe_time_to_live(TableName=names.prices)["TimeToLiveDescription"]
    assert prices["TimeToLiveStatus"] == "DISABLED"


def _customer(version, status="active"):
    return contract.CustomerItem(
        customer_id="c-1",
        version=version,
        status=status,
        name="Acme",
        daily_request_limit=100,
        allowed_models=["nova-lite"],
        ip_allowlist=["10.0.0.0/8"],
        default_model_params={"temperature": 0.2, "max_tokens": 500},
    )


def test_customer_round_trip_with_schema_version(dynamodb):
    assert contract.put_customer(dynamodb, _customer(1))
    assert contract.get_customer(dynamodb, "c-1") == _customer(1)
    raw = dynamodb.get_item(
        TableName=contract.table_names().customers, Key={"customer_id": {"S": "c-1"}}
    )["Item"]
    assert raw["schema_version"] == {"N": str(contract.SCHEMA_VERSION)}


def test_older_version_never_overwrites_newer(dynamodb):
    assert contract.put_customer(dynamodb, _customer(2, status="suspended"))
    assert not contract.put_customer(dynamodb, _customer(1, status="active"))
    assert not contract.put_customer(dynamodb, _customer(2, status="suspended"))  # replay
    assert contract.get_customer(dynamodb, "c-1").status == "suspended"
    assert contract.put_customer(dynamodb, _customer(3, status="active"))
    assert contract.get_customer(dynamodb, "c-1").status == "active"


def test_token_round_trip_ttl_and_usability(dynamodb):
    now = int(time.time())
    item = contract.TokenItem(
        token_hash=contract.hash_token("bup_x"),
        version=1,
        token_id="t-1",
        customer_id="c-1",
        display_prefix="bup_x",
        status="active",
        expires_at=now + 60,
        created_at=now,
    )
    assert contract.put_token(dynamodb, item)
    stored = contract.get_token(dynamodb, item.token_hash)
    assert stored == item
    assert stored.usable_at(now) and not stored.usable_at(now + 61)
    raw = dynamodb.get_item(
        TableName=contract.table_names().tokens, Key={"token_hash": {"S": item.token_hash}}
    )["Item"]
    assert int(raw["ttl"]["N"]) == now + 60 + 30 * 24 * 3600
    assert [t.token_id for t in contract.iter_tokens(dynamodb)] == ["t-1"]


def test_usage_snapshot_reads_day_month_and_models(dynamodb):
    table = contract.table_names().usage_counters
    day = date(2026, 11, 23)
    pk = contract.counter_pk("c-1")
    rows = {
        contract.day_sk(day): 3,
        contract.day_sk(day, "amazon.nova-lite-v1:0"): 2,
        contract.day_sk(day, "sandbox.echo-v1"): 1,
        contract.month_sk(day): 10,
        contract.day_sk(date(2026, 11, 22)): 7,
    }
    for sk, requests in rows.items():
        dynamodb.put_item(
            TableName=table,
            Item={
                "pk": {"S": pk},
                "sk": {"S": sk},
                "requests": {"N": str(requests)},
                "input_tokens": {"N": str(requests * 100)},
            },
        )
    snap = contract.get_usage_snapshot(dynamodb, "c-1", day)
    assert snap["day"]["requests"] == 3 and snap["day"]["input_tokens"] == 300
    assert snap["month"]["requests"] == 10
    assert snap["day_by_model"]["amazon.nova-lite-v1:0"]["requests"] == 2
    assert snap["day_by_model"]["sandbox.echo-v1"]["output_tokens"] == 0
    assert snap["month_by_model"] == {}
