import os

import boto3
import pytest
from moto import mock_aws

from usage.counters import counters_table_name


@pytest.fixture
def events_dir(tmp_path, settings):
    settings.USAGE_EVENTS_DIR = str(tmp_path)
    settings.USAGE_ENGINE = "duckdb"
    return tmp_path


def _create_counters_table(client):
    try:
        from proxy import contract

        contract.create_tables(client)
    except ImportError:
        pass
    if counters_table_name() not in client.list_tables()["TableNames"]:
        client.create_table(
            TableName=counters_table_name(),
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )


@pytest.fixture
def dynamodb(settings):
    """moto DynamoDB with the proxy's usage counters table."""
    os.environ.setdefault("AWS_DEFAULT_REGION", settings.AWS_REGION)
    with mock_aws():
        settings.AWS_ENDPOINT_URL = None
        client = boto3.client("dynamodb", region_name=settings.AWS_REGION)
        _create_counters_table(client)
        yield client


def put_counter(client, customer_id, sk, **values):
    item = {"pk": {"S": f"CUST#{customer_id}"}, "sk": {"S": sk}}
    item.update({k: {"N": str(v)} for k, v in values.items()})
    client.put_item(TableName=counters_table_name(), Item=item)
