import pytest
from django.urls import reverse

from customers.models import Customer, SyncOutbox

pytestmark = pytest.mark.django_db
URL = reverse("staff:customer_list")


@pytest.fixture
def many_customers(db):
    Customer.objects.bulk_create(
        Customer(
            name=f"Customer {i:05d}",
            contact_email=f"ops{i}@c{i}.example",
            status=Customer.Status.SUSPENDED if i % 10 == 0 else Customer.Status.ACTIVE,
        )
        for i in range(10_000)
    )


@pytest.mark.parametrize(
    "query",
    ["", "?page=120", "?q=customer 0999", "?status=suspended&sort=-created&page=3", "?sort=-name"],
)
def test_ten_thousand_customers_in_a_bounded_number_of_queries(
    staff_client, many_customers, django_assert_max_num_queries, query
):
    with django_assert_max_num_queries(6):
        response = staff_client.get(URL + query)
    assert response.status_code == 200
    assert len(response.context["page"].object_list) <= 50


def test_search_filter_sort_paginate(staff_client, many_customers):
    response = staff_client.get(URL, {"q": "ops77@", "sort": "name"})
    names = [c.name for c in response.context["page"]]
    assert names[0] == "Customer 00077" and all("77" in n for n in names)
    response = staff_client.get(URL, {"status": "suspended"})
    assert response.context["page"].paginator.count == 1000
    response = staff_client.get(URL, {"sort": "-name", "page": "2"})
    assert response.context["page"][0].name == "Customer 09949"
    assert b"page=3" in response.content


def test_bad_parameters_never_500(staff_client, customer):
    for params in ({"sort": "drop table"}, {"status": "nope"}, {"page": "-1"}, {"page": "x"}):
        assert staff_client.get(URL, params).status_code == 200


def test_sync_state_column(staff_client, customer):
    SyncOutbox.objects.create(customer=customer, kind="customer", version=1, payload={})
    response = staff_client.get(URL)
    assert response.context["page"][0].sync_state == "pending"
    SyncOutbox.objects.update(attempts=1, last_error="boom")
    assert staff_client.get(URL).context["page"][0].sync_state == "failing"


def test_filter_by_sync_state(staff_client, customer, other_customer):
    SyncOutbox.objects.create(
        customer=other_customer, kind="customer", version=1, payload={}, attempts=2
    )
    response = staff_client.get(URL, {"sync": "failing"})
    assert [c.name for c in response.context["page"]] == ["Globex Research"]
    response = staff_client.get(URL, {"sync": "in sync"})
    assert [c.name for c in response.context["page"]] == ["Acme Analytics"]


def test_a_bad_filter_keeps_the_good_ones(staff_client, customer, other_customer):
    response = staff_client.get(URL, {"q": "globex", "sort": "nonsense"})
    assert [c.name for c in response.context["page"]] == ["Globex Research"]
