"""Concurrent changes to one customer: versions stay unique and DynamoDB ends on the last one."""

import threading

import pytest
from django.db import connection, connections

from customers import services
from customers.models import Customer, SyncOutbox
from proxy import contract

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs a server database")
def test_parallel_limit_changes(ddb, customer):
    errors = []

    def change(value):
        try:
            services.customer_update_limits(
                customer=Customer.objects.get(pk=customer.pk), daily_request_limit=value
            )
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=change, args=(n,)) for n in range(1, 11)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    customer.refresh_from_db()
    versions = list(SyncOutbox.objects.filter(customer=customer).values_list("version", flat=True))
    assert sorted(versions) == list(range(1, 11))
    item = contract.get_customer(ddb, str(customer.pk))
    assert (item.version, item.daily_request_limit) == (10, customer.daily_request_limit)
