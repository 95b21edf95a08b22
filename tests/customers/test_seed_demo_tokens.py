from io import StringIO

import pytest
from django.core.management import call_command

from customers.models import Customer, Token
from proxy import contract

pytestmark = pytest.mark.django_db


def test_seed_demo_gives_limits_and_one_token_each_idempotently(ddb, settings):
    settings.DEMO_STAFF_PASSWORD = "staff-demo-pass-1"
    settings.DEMO_CUSTOMER_PASSWORD = "customer-demo-pass-1"
    first, second = StringIO(), StringIO()
    # The tokens only (the demo usage is tests/test_seed_demo.py's).
    call_command("seed_demo", "--no-usage", stdout=first)
    call_command("seed_demo", "--no-usage", stdout=second)
    assert first.getvalue().count("Demo token for") == 5
    assert "Demo token for" not in second.getvalue()
    assert Token.objects.count() == 5
    # The tokens printed work against what the proxy reads.
    for line in first.getvalue().splitlines():
        if line.startswith("Demo token for"):
            plaintext = line.rsplit(": ", 1)[1]
            assert contract.get_token(ddb, contract.hash_token(plaintext)).status == "active"
    for customer in Customer.objects.all():
        item = contract.get_customer(ddb, str(customer.pk))
        assert item.daily_request_limit == customer.daily_request_limit is not None
