import pytest
from django.core.exceptions import ValidationError

from customers import services
from customers.models import AuditEvent, Customer, SyncOutbox
from proxy import contract

pytestmark = pytest.mark.django_db


def test_customer_create_writes_dynamodb_and_audit(ddb, staff_user):
    customer = services.customer_create(
        name="Initech",
        contact_email="it@initech.example",
        daily_request_limit="500",
        allowed_models="sandbox.echo-v1, claude-3-haiku",
        ip_allowlist="127.0.0.0/8 127.0.1.7",
        actor=staff_user,
        ip="127.0.0.9",
    )
    item = contract.get_customer(ddb, str(customer.pk))
    assert item.status == "active"
    assert item.name == "Initech"
    assert item.daily_request_limit == 500
    assert item.allowed_models == ["sandbox.echo-v1", "claude-3-haiku"]
    assert item.ip_allowlist == ["127.0.0.0/8", "127.0.1.7/32"]
    assert item.version == customer.sync_version == 1
    event = AuditEvent.objects.get(customer=customer)
    assert (event.action, event.actor, event.source_ip) == (
        "customer.create",
        staff_user,
        "127.0.0.9",
    )
    assert event.after["daily_request_limit"] == 500
    assert SyncOutbox.objects.get(customer=customer).delivered_at is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("daily_request_limit", "-1"),
        ("daily_request_limit", "0"),
        ("rpm_limit", "ten"),
        ("monthly_token_quota", "1.5"),
        ("allowed_models", "good-model, bad model!"),
        ("ip_allowlist", "127.0.0.0/33"),
        ("ip_allowlist", "example.com"),
        ("default_model_params", "[1, 2]"),
        ("default_model_params", "{not json"),
        ("daily_request_limit", str(2**31)),  # beyond the 32-bit column
        ("rpm_limit", str(2**31)),
        ("monthly_token_quota", str(2**63)),
    ],
)
def test_bad_limits_are_refused(ddb, customer, field, value):
    with pytest.raises(ValidationError):
        services.customer_update_limits(customer=customer, **{field: value})
    assert AuditEvent.objects.filter(customer=customer).count() == 0


def test_update_limits_is_partial_and_versioned(ddb, customer, staff_user):
    services.customer_update_limits(customer=customer, daily_request_limit=100, rpm_limit=5)
    services.customer_update_limits(customer=customer, rpm_limit=None, actor=staff_user)
    customer.refresh_from_db()
    assert (customer.daily_request_limit, customer.rpm_limit) == (100, None)
    item = contract.get_customer(ddb, str(customer.pk))
    assert (item.daily_request_limit, item.rpm_limit, item.version) == (100, None, 2)
    last = AuditEvent.objects.filter(customer=customer).first()
    assert last.before == {"rpm_limit": 5} and last.after == {"rpm_limit": None}


def test_unchanged_limits_write_nothing(ddb, customer):
    services.customer_update_limits(customer=customer, daily_request_limit=100)
    services.customer_update_limits(customer=customer, daily_request_limit="100")
    assert SyncOutbox.objects.filter(customer=customer).count() == 1
    assert AuditEvent.objects.filter(customer=customer).count() == 1


def test_suspend_and_reactivate(ddb, customer):
    services.customer_suspend(customer=customer)
    assert contract.get_customer(ddb, str(customer.pk)).status == "suspended"
    services.customer_reactivate(customer=customer)
    assert customer.status == Customer.Status.ACTIVE
    assert contract.get_customer(ddb, str(customer.pk)).status == "active"
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions == ["customer.reactivate", "customer.suspend"]


def test_close_revokes_tokens(ddb, customer):
    issued = services.token_create(customer=customer)
    services.customer_close(customer=customer)
    assert contract.get_customer(ddb, str(customer.pk)).status == "closed"
    assert contract.get_token(ddb, contract.hash_token(issued.plaintext)).status == "revoked"
    with pytest.raises(ValidationError):
        services.token_create(customer=customer)


def test_update_details_syncs_only_the_name(ddb, customer):
    services.customer_update(customer=customer, notes="VIP", billing_name="Acme Ltd")
    assert SyncOutbox.objects.filter(customer=customer).count() == 0
    services.customer_update(customer=customer, name="Acme Analytics Ltd")
    assert contract.get_customer(ddb, str(customer.pk)).name == "Acme Analytics Ltd"


def test_update_refuses_bad_email(ddb, customer):
    with pytest.raises(ValidationError):
        services.customer_update(customer=customer, contact_email="not-an-email")


@pytest.mark.parametrize("email", ["a@b.example, c@d.example", "", "x"])
def test_contact_email_must_be_one_address(ddb, email):
    with pytest.raises(ValidationError):
        services.customer_create(name="X", contact_email=email)


def test_largest_storable_limits_are_accepted(ddb, customer):
    services.customer_update_limits(
        customer=customer, daily_request_limit=str(2**31 - 1), monthly_token_quota=str(2**63 - 1)
    )
    customer.refresh_from_db()
    assert customer.daily_request_limit == 2**31 - 1
    assert customer.monthly_token_quota == 2**63 - 1
