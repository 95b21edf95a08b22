"""Tokens' last use is live: the real proxy handler SETs it on the token's own LAST item in
the usage transaction it already makes, and the staff and customer token pages show it at once
(not "never" until the nightly import)."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from customers import services
from proxy import contract
from usage import counters, selectors
from usage.services import utc_today

from .conftest import chat, event, make_app

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def proxy_app(aws):
    return make_app(aws.client("dynamodb"))


@pytest.fixture
def customer(aws, staff_user):
    return services.customer_create(
        name="Acme Analytics", contact_email="billing@acme.example", actor=staff_user
    )


def _transactions(app):
    """Count the DynamoDB calls of the proxy's client by operation."""
    seen = []
    app.dynamodb.meta.events.register(
        "before-call.dynamodb.*", lambda model, **kw: seen.append(model.name)
    )
    return seen


def test_last_use_is_set_by_the_usage_transaction_and_shown(
    proxy_app, aws, customer, staff_user, staff_client
):
    plain = services.token_create(customer=customer, label="no-limits", actor=staff_user)
    limited = services.token_create(
        customer=customer, label="limited", limits={"daily_request_limit": 100}, actor=staff_user
    )
    unused = services.token_create(customer=customer, label="unused", actor=staff_user)
    seen = _transactions(proxy_app)
    before = datetime.now(UTC).replace(microsecond=0)
    for issued in (plain, limited):
        response = proxy_app.handle(event(chat(), token=issued.plaintext))
        assert response["statusCode"] == 200
    assert seen.count("TransactWriteItems") == 4  # admission + usage per call: no extra call
    assert "UpdateItem" not in seen and "PutItem" not in seen

    tokens = [plain.token, limited.token, unused.token]
    live = selectors.tokens_last_used(tokens=tokens)
    assert set(live) == {str(plain.token.pk), str(limited.token.pk)}
    assert all(before <= when <= datetime.now(UTC) for when in live.values())
    pk, sk = contract.last_used_key(str(plain.token.pk))
    raw = aws.client("dynamodb").get_item(
        TableName=counters.counters_table_name(), Key={"pk": {"S": pk}, "sk": {"S": sk}}
    )["Item"]
    assert before.timestamp() <= int(raw[contract.LAST_USED]["N"]) and "ttl" in raw
    month = aws.client("dynamodb").get_item(
        TableName=counters.counters_table_name(),
        Key={
            "pk": {"S": counters.customer_pk(customer.pk)},
            "sk": {"S": counters.month_sk(utc_today())},
        },
    )["Item"]
    assert not any(name.startswith("last_used") for name in month)  # no per-token attribute

    html = staff_client.get(reverse("staff:customer_detail", args=[customer.pk])).content.decode()
    for issued in (plain, limited):
        row = html[html.index(issued.token.masked) :].split("</tr>", 1)[0]
        assert "never" not in row.split("<td>")[-3] and " UTC" in row
    unused_row = html[html.index(unused.token.masked) :].split("</tr>", 1)[0]
    assert ">never<" in unused_row


def test_customer_tokens_page_shows_live_last_use(proxy_app, customer, staff_user, client):
    from core.models import User

    user = User.objects.create_user("user@acme.example", "x-password-123", customer=customer)
    client.force_login(user)
    issued = services.token_create(customer=customer, label="backend", actor=staff_user)
    html = client.get(reverse("customer:customer_tokens")).content.decode()
    row = html[html.index(issued.token.masked) :].split("</tr>", 1)[0]
    assert ">never<" in row
    assert proxy_app.handle(event(chat(), token=issued.plaintext))["statusCode"] == 200
    html = client.get(reverse("customer:customer_tokens")).content.decode()
    row = html[html.index(issued.token.masked) :].split("</tr>", 1)[0]
    assert ">never<" not in row and datetime.now(UTC).strftime("%b %Y") in row


def test_nightly_value_still_shows_when_this_month_has_none(customer, staff_user):
    issued = services.token_create(customer=customer, label="old", actor=staff_user)
    earlier = datetime(2020, 1, 2, 3, 4, tzinfo=UTC)
    services.tokens_record_last_used(last_used={issued.token.pk: earlier})
    issued.token.refresh_from_db()
    (token,) = selectors.with_last_use([issued.token])
    assert token.last_use == earlier
