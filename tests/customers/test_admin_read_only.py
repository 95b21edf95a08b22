"""Django's admin can look at customers, tokens, the outbox and the audit trail, never change
them: a change there would skip the audit and the sync (a deleted token would keep working)."""

import pytest

from core.models import User
from customers import services
from customers.models import AuditEvent, Customer, SyncOutbox, Token
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client, db):
    user = User.objects.create_superuser("root@example.com", TEST_PASSWORD)
    client.force_login(user)
    return client


def test_superuser_can_list_but_not_add_change_or_delete(superuser_client, ddb, customer):
    issued = services.token_create(customer=customer, label="backend")
    objects = {
        "customer": customer,
        "token": issued.token,
        "syncoutbox": SyncOutbox.objects.first(),
        "auditevent": AuditEvent.objects.first(),
    }
    for name, obj in objects.items():
        base = f"/django-admin/customers/{name}/"
        listing = superuser_client.get(base)
        assert listing.status_code == 200, name
        assert issued.token.token_hash not in listing.content.decode()
        assert superuser_client.get(base + "add/").status_code == 403, name
        assert superuser_client.get(f"{base}{obj.pk}/delete/").status_code == 403, name
        deleted = superuser_client.post(
            base, {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"}
        )
        assert deleted.status_code in (200, 302, 403), name
    assert Customer.objects.count() == 1 and Token.objects.count() == 1
    assert SyncOutbox.objects.exists() and AuditEvent.objects.exists()
