"""Every staff and customer URL is protected: walked from the URL conf, so new views are covered."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

_FAKE_ARGS = {
    "uuid": "00000000-0000-4000-8000-000000000001",
    "int": "1",
    "slug": "x",
    "str": "x",
    "path": "x",
}


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _concrete(route: str) -> str:
    out = route
    while "<" in out:
        start, end = out.index("<"), out.index(">")
        spec = out[start + 1 : end]
        converter = spec.split(":")[0] if ":" in spec else "str"
        out = out[:start] + _FAKE_ARGS.get(converter, "x") + out[end + 1 :]
    return "/" + out


def _urls(prefix):
    routes = [r for r in _walk(get_resolver().url_patterns) if r.startswith(prefix)]
    assert routes, f"no URLs under /{prefix}"
    return [_concrete(r) for r in routes]


STAFF_URLS = _urls("staff/")
CUSTOMER_URLS = _urls("app/")


@pytest.mark.parametrize("url", STAFF_URLS + CUSTOMER_URLS)
def test_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("url", STAFF_URLS)
def test_customer_users_never_reach_staff_pages(customer_client, url):
    assert customer_client.get(url).status_code == 403
    assert customer_client.post(url).status_code == 403


@pytest.mark.parametrize("url", CUSTOMER_URLS)
def test_staff_get_403_on_customer_pages(staff_client, url):
    assert staff_client.get(url).status_code == 403


@pytest.mark.parametrize("url", STAFF_URLS)
def test_staff_reach_staff_pages(staff_client, url):
    assert staff_client.get(url).status_code not in (302, 403)


@pytest.mark.parametrize("url", CUSTOMER_URLS)
def test_customer_users_reach_customer_pages(customer_client, url):
    assert customer_client.get(url).status_code not in (302, 403)


def test_home_redirects_by_role(client, staff_user, customer_user):
    assert client.get("/")["Location"] == "/accounts/login/"
    client.force_login(staff_user)
    assert client.get("/")["Location"] == "/staff/"
    client.force_login(customer_user)
    assert client.get("/")["Location"] == "/app/"


def test_403_and_404_pages_are_friendly(customer_client):
    forbidden = customer_client.get("/staff/")
    assert b"have access to this page" in forbidden.content
    missing = customer_client.get("/no-such-page/")
    assert missing.status_code == 404
    assert b"Page not found" in missing.content


def test_user_is_staff_or_customer_never_both(customer):
    from django.db import IntegrityError, transaction

    from core.models import User

    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user("both@example.com", "x" * 12, is_staff=True, customer=customer)
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user("neither@example.com", "x" * 12)
