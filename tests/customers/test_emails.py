from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from customers import services
from customers.emails import token_expiry_warnings_send
from customers.onboarding import customer_user_invite

pytestmark = pytest.mark.django_db


def test_invite_sends_a_set_password_link(ddb, customer, client):
    user = customer_user_invite(customer=customer, email="New.User@Acme.example", full_name="N U")
    assert user.email == "new.user@acme.example"
    assert not user.has_usable_password()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new.user@acme.example"]
    assert "Acme Analytics" in message.subject
    html = message.alternatives[0][0]
    link = next(w for w in message.body.split() if "/accounts/password/reset/" in w)
    assert link in html
    path = link.split("://", 1)[1].split("/", 1)[1]
    response = client.get("/" + path, follow=True)
    assert response.status_code == 200
    assert b"new_password1" in response.content


def test_invite_refuses_an_existing_email(ddb, customer, customer_user):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        customer_user_invite(customer=customer, email=customer_user.email.upper())


def test_expiry_warning_is_sent_once(ddb, customer, customer_user, settings):
    settings.TOKEN_EXPIRY_WARNING_DAYS = 7
    soon = services.token_create(
        customer=customer, label="soon", expires_at=timezone.now() + timedelta(days=3)
    )
    services.token_create(
        customer=customer, label="later", expires_at=timezone.now() + timedelta(days=30)
    )
    services.token_create(customer=customer, label="never", expires_at=None)
    mail.outbox.clear()
    assert token_expiry_warnings_send() == 1
    message = mail.outbox[0]
    assert "soon" in message.subject
    assert set(message.to) == {"billing@acme.example", customer_user.email}
    assert soon.token.masked in message.body
    assert soon.plaintext not in message.body
    assert token_expiry_warnings_send() == 0
    assert len(mail.outbox) == 1


def test_no_warning_for_revoked_or_rotated_tokens(ddb, customer, settings):
    settings.TOKEN_EXPIRY_WARNING_DAYS = 7
    a = services.token_create(customer=customer, expires_at=timezone.now() + timedelta(days=2))
    b = services.token_create(customer=customer, expires_at=timezone.now() + timedelta(days=2))
    services.token_revoke(token=a.token)
    services.token_rotate(token=b.token, expires_at=None)
    assert token_expiry_warnings_send() == 0


def test_a_failed_send_is_retried_on_the_next_run(ddb, customer, settings, monkeypatch):
    from customers import emails

    settings.TOKEN_EXPIRY_WARNING_DAYS = 7
    first = services.token_create(customer=customer, label="first", expires_at=_days(2))
    services.token_create(customer=customer, label="second", expires_at=_days(3))
    real_send = emails.send_templated

    def mail_server_down_for_first(**kwargs):
        if kwargs["context"]["token"].pk == first.token.pk:
            raise ConnectionRefusedError("smtp down")
        return real_send(**kwargs)

    monkeypatch.setattr(emails, "send_templated", mail_server_down_for_first)
    mail.outbox.clear()
    assert token_expiry_warnings_send() == 1  # the other token's warning still went out
    assert ["second" in m.subject for m in mail.outbox] == [True]
    first.token.refresh_from_db()
    assert first.token.expiry_warning_sent_at is None  # not marked as sent

    monkeypatch.setattr(emails, "send_templated", real_send)
    assert token_expiry_warnings_send() == 1
    assert "first" in mail.outbox[-1].subject
    assert token_expiry_warnings_send() == 0


def _days(n):
    return timezone.now() + timedelta(days=n)
