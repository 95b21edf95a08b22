import pytest
from django.core.management import CommandError, call_command

from customers.models import Customer
from portal.models import User

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent(settings):
    settings.DEMO_STAFF_PASSWORD = "staff-demo-pass-1"
    settings.DEMO_CUSTOMER_PASSWORD = "customer-demo-pass-1"
    call_command("seed_demo", verbosity=0)
    call_command("seed_demo", verbosity=0)
    assert Customer.objects.count() == 5
    staff = User.objects.get(email="staff@example.com")
    customer_user = User.objects.get(email="customer@example.com")
    assert staff.is_staff and staff.check_password("staff-demo-pass-1")
    assert customer_user.customer.name == "Acme Analytics"
    assert customer_user.check_password("customer-demo-pass-1")


def test_seed_demo_needs_passwords(settings):
    settings.DEMO_STAFF_PASSWORD = ""
    with pytest.raises(CommandError, match="DEMO_STAFF_PASSWORD"):
        call_command("seed_demo")
