"""The 403, 404 and 500 pages: friendly, in the portal's look, and never a traceback."""

import pytest
from django.urls import path

from portal import urls as portal_urls

pytestmark = pytest.mark.django_db


def _boom(request):
    raise RuntimeError("secret internals: bup_should_never_be_shown")


# This module is the URL conf of the tests below: the portal's URLs plus one that fails.
urlpatterns = [path("boom/", _boom), *portal_urls.urlpatterns]


@pytest.mark.urls("tests.test_error_pages")
def test_500_page_is_friendly_and_hides_the_error(client, customer_user, settings, caplog):
    settings.DEBUG = False
    client.raise_request_exception = False
    client.force_login(customer_user)
    response = client.get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong on our side" in body
    assert '<main id="main"' in body and 'href="/"' in body
    assert "RuntimeError" not in body and "bup_should_never_be_shown" not in body
    assert "Traceback" not in body
    assert "RuntimeError" in caplog.text  # logged for staff, not shown to the user


@pytest.mark.parametrize(
    ("url", "status", "text"),
    [
        ("/staff/customers/", 403, "have access to this page"),
        ("/no-such-page/", 404, "Page not found"),
    ],
)
def test_403_and_404_pages_keep_the_navigation(customer_client, url, status, text):
    response = customer_client.get(url)
    assert response.status_code == status
    body = response.content.decode()
    assert text in body
    assert "<nav" in body and "Log out" in body  # the signed-in user can find their way back
