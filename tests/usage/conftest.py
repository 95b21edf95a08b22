import os

import boto3
import pytest
from moto import mock_aws

from proxy import contract
from usage.counters import counters_table_name


@pytest.fixture
def events_dir(tmp_path, settings):
    settings.USAGE_EVENTS_DIR = str(tmp_path)
    settings.USAGE_ENGINE = "duckdb"
    return tmp_path


@pytest.fixture
def dynamodb(settings):
    """moto DynamoDB with the proxy's usage counters table."""
    os.environ.setdefault("AWS_DEFAULT_REGION", settings.AWS_REGION)
    with mock_aws():
        settings.AWS_ENDPOINT_URL = None
        client = boto3.client("dynamodb", region_name=settings.AWS_REGION)
        contract.create_tables(client)
        yield client


def put_counter(client, customer_id, sk, **values):
    item = {"pk": {"S": f"CUST#{customer_id}"}, "sk": {"S": sk}}
    item.update({k: {"N": str(v)} for k, v in values.items()})
    client.put_item(TableName=counters_table_name(), Item=item)
