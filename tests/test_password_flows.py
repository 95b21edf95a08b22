import re

import pytest
from django.core import mail
from django.urls import reverse

from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def test_password_change(customer_client, customer_user):
    response = customer_client.post(
        reverse("password_change"),
        {
            "old_password": TEST_PASSWORD,
            "new_password1": "a-much-better-passphrase",
            "new_password2": "a-much-better-passphrase",
        },
    )
    assert response.status_code == 302
    customer_user.refresh_from_db()
    assert customer_user.check_password("a-much-better-passphrase")


def test_password_reset_by_email(client, customer_user):
    response = client.post(reverse("password_reset"), {"email": customer_user.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [customer_user.email]
    assert "Reset your Bedrock Usage Portal password" in message.subject
    assert message.alternatives and "text/html" in message.alternatives[0][1]
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", message.body).group(1)

    form_page = client.get(link, follow=True)
    assert b"Choose a new password" in form_page.content
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(
        set_url, {"new_password1": "fresh-passphrase-42", "new_password2": "fresh-passphrase-42"}
    )
    assert done.status_code == 302
    customer_user.refresh_from_db()
    assert customer_user.check_password("fresh-passphrase-42")


def test_password_reset_for_unknown_email_sends_nothing(client):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert response.status_code == 302  # same answer: no account enumeration
    assert mail.outbox == []
