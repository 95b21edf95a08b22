import pytest
from django.urls import reverse

from customers.models import AuditEvent, Customer
from proxy import contract

pytestmark = pytest.mark.django_db
URL = reverse("staff:customer_bulk")


def test_bulk_suspend_needs_confirmation(staff_client, ddb, customer, other_customer):
    ids = [str(customer.pk), str(other_customer.pk)]
    page = staff_client.post(URL, {"action": "suspend", "ids": ids})
    assert page.status_code == 200 and b'name="confirm"' in page.content
    assert Customer.objects.filter(status="suspended").count() == 0
    done = staff_client.post(URL, {"action": "suspend", "ids": ids, "confirm": "1"})
    assert done.status_code == 302
    assert Customer.objects.filter(status="suspended").count() == 2
    assert contract.get_customer(ddb, str(other_customer.pk)).status == "suspended"
    staff_client.post(URL, {"action": "reactivate", "ids": ids, "confirm": "1"})
    assert Customer.objects.filter(status="active").count() == 2


def test_bulk_set_limits_changes_only_ticked_fields(staff_client, ddb, customer, other_customer):
    customer.rpm_limit = 5
    customer.save()
    ids = [str(customer.pk), str(other_customer.pk)]
    data = {
        "action": "set_limits",
        "ids": ids,
        "confirm": "1",
        "apply_daily_request_limit": "on",
        "daily_request_limit": "777",
        "rpm_limit": "",
    }
    assert staff_client.post(URL, data).status_code == 302
    customer.refresh_from_db()
    assert (customer.daily_request_limit, customer.rpm_limit) == (777, 5)
    assert contract.get_customer(ddb, str(other_customer.pk)).daily_request_limit == 777
    assert AuditEvent.objects.filter(action="customer.limits").count() == 2


def test_bulk_bad_input(staff_client, ddb, customer):
    assert staff_client.post(URL, {"action": "suspend"}).status_code == 302  # nothing selected
    assert staff_client.post(URL, {"action": "nuke", "ids": [str(customer.pk)]}).status_code == 302
    assert staff_client.post(URL, {"action": "suspend", "ids": ["x"]}).status_code == 302
    bad = staff_client.post(
        URL,
        {
            "action": "set_limits",
            "ids": [str(customer.pk)],
            "confirm": "1",
            "apply_rpm_limit": "on",
            "rpm_limit": "-1",
        },
    )
    assert bad.status_code == 200 and bad.context["limits_form"].errors
    customer.refresh_from_db()
    assert customer.rpm_limit is None
