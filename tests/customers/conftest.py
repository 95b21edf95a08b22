"""Fixtures for the customers tests: DynamoDB (moto) through the real contract module."""

import pytest

from customers import services
from customers.sync import dynamodb_client
from proxy import contract


@pytest.fixture
def ddb(transactional_db, aws):
    """The DynamoDB client the portal uses, inside moto; read items back with `contract`.

    Transactional: the outbox is delivered on commit, as in production.
    """
    return dynamodb_client()


@pytest.fixture
def synced_customer(ddb, customer):
    """The conftest customer, with limits, pushed to DynamoDB."""
    return services.customer_update_limits(customer=customer, daily_request_limit=1000)


@pytest.fixture
def issued(ddb, customer):
    return services.token_create(customer=customer, label="backend")


def remote_token(ddb, plaintext):
    return contract.get_token(ddb, contract.hash_token(plaintext))
