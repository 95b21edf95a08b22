"""Single sign-on for staff through OpenID Connect, against a small provider served on loopback
in a thread (discovery document, token endpoint, userinfo, JWKS): no network beyond 127.0.0.1."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from core import two_factor as tf
from core.models import User
from tests.test_settings import PRODUCTION_ENV, _manage

pytestmark = pytest.mark.django_db

CLIENT_ID = "portal-test-client"
CLIENT_SECRET = "test-client-secret"


class Provider:
    """What the stub provider answers; tests set `claims` to the person who signs in."""

    def __init__(self):
        self.claims = {}
        self.requests = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, body, status=200):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                provider.requests.append(("GET", self.path))
                if self.path == "/.well-known/openid-configuration":
                    self._json(provider.discovery())
                elif self.path == "/userinfo":
                    if self.headers.get("Authorization") != "Bearer access-1":
                        return self._json({"error": "invalid_token"}, 401)
                    self._json(provider.claims)
                elif self.path == "/jwks":
                    self._json({"keys": []})
                else:
                    self._json({"error": "not_found"}, 404)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                provider.requests.append(("POST", self.path, form))
                if self.path != "/token" or form.get("code") != ["code-1"]:
                    return self._json({"error": "invalid_grant"}, 400)
                if form.get("client_secret") != [CLIENT_SECRET]:
                    return self._json({"error": "invalid_client"}, 401)
                self._json(
                    {
                        "access_token": "access-1",
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "id_token": provider.id_token(),
                    }
                )

        return Handler

    def discovery(self):
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "userinfo_endpoint": f"{self.url}/userinfo",
            "jwks_uri": f"{self.url}/jwks",
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "response_types_supported": ["code"],
        }

    def id_token(self):
        now = int(time.time())
        body = {"iss": self.url, "aud": CLIENT_ID, "iat": now, "exp": now + 300}
        body |= {"sub": self.claims.get("sub", "subject-1")}
        return jwt.encode(body, "provider-signing-key-for-tests-only", algorithm="HS256")


@pytest.fixture
def provider(settings):
    stub = Provider()
    thread = threading.Thread(target=stub.server.serve_forever, daemon=True)
    thread.start()
    settings.OIDC_PROVIDER_URL = stub.url
    settings.OIDC_CLIENT_ID = CLIENT_ID
    settings.OIDC_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_PROVIDER_NAME = "Acme ID"
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "OAUTH_PKCE_ENABLED": True,
            "APPS": [
                {
                    "provider_id": settings.SSO_PROVIDER_ID,
                    "name": "Acme ID",
                    "client_id": CLIENT_ID,
                    "secret": CLIENT_SECRET,
                    "settings": {"server_url": stub.url},
                }
            ],
        }
    }
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


def sso_round_trip(client, provider, claims, next_url=""):
    """The login page's button, the provider's redirect back; returns the callback's answer."""
    provider.claims = claims
    start = client.post(reverse("openid_connect_login", args=["sso"]), {"next": next_url})
    assert start.status_code == 302, start.content.decode()[:500]
    authorize = urlparse(start["Location"])
    assert authorize.netloc == urlparse(provider.url).netloc
    query = parse_qs(authorize.query)
    assert query["client_id"] == [CLIENT_ID]
    assert "code_challenge" in query  # PKCE
    callback = reverse("openid_connect_callback", args=["sso"])
    assert query["redirect_uri"][0].endswith(callback)
    return client.get(callback, {"code": "code-1", "state": query["state"][0]})


def staff_claims(email, verified=True, sub="subject-1"):
    return {"sub": sub, "email": email, "email_verified": verified, "name": "Sam Staff"}


def test_login_page_shows_the_button_only_when_configured(client, settings):
    assert b"Sign in with" not in client.get(reverse("login")).content
    assert client.post(reverse("openid_connect_login", args=["sso"])).status_code == 404
    assert client.get(reverse("openid_connect_callback", args=["sso"])).status_code == 404


def test_login_page_button(client, provider):
    page = client.get(reverse("login"))
    assert b"Sign in with Acme ID" in page.content
    assert reverse("openid_connect_login", args=["sso"]).encode() in page.content
    # The password form is still there.
    assert b'name="password"' in page.content


def test_staff_with_verified_email_signs_in(client, provider, staff_user):
    response = sso_round_trip(client, provider, staff_claims("STAFF@example.com"))
    assert response.status_code == 302, response.content.decode()[:1000]
    assert client.get("/staff/").status_code == 200
    assert client.session["_auth_user_id"] == str(staff_user.pk)
    token_calls = [r for r in provider.requests if r[:2] == ("POST", "/token")]
    assert len(token_calls) == 1
    # Nothing is created or linked.
    from allauth.socialaccount.models import SocialAccount

    assert not SocialAccount.objects.exists()
    assert User.objects.count() == 1


def test_sso_keeps_the_next_page(client, provider, staff_user):
    response = sso_round_trip(client, provider, staff_claims(staff_user.email), "/staff/api-keys/")
    assert response["Location"] == "/staff/api-keys/"


def test_unknown_email_is_refused(client, provider, staff_user):
    response = sso_round_trip(client, provider, staff_claims("stranger@example.com"))
    assert response.status_code == 403
    assert b"no active staff account for stranger@example.com" in response.content
    assert User.objects.count() == 1
    assert client.get("/staff/").status_code == 302


def test_customer_user_is_refused(client, provider, customer_user):
    response = sso_round_trip(client, provider, staff_claims(customer_user.email))
    assert response.status_code == 403
    assert b"Single sign-on is for staff" in response.content
    assert client.get("/app/").status_code == 302


def test_unverified_email_is_refused(client, provider, staff_user):
    response = sso_round_trip(client, provider, staff_claims(staff_user.email, verified=False))
    assert response.status_code == 403
    assert b"did not confirm that your email address is verified" in response.content
    assert client.get("/staff/").status_code == 302


@pytest.mark.parametrize("kind", ["inactive", "service"])
def test_disabled_staff_and_service_accounts_are_refused(client, provider, staff_user, kind):
    if kind == "inactive":
        staff_user.is_active = False
    else:
        staff_user.is_service_account = True
    staff_user.save()
    response = sso_round_trip(client, provider, staff_claims(staff_user.email))
    assert response.status_code == 403
    assert client.get("/staff/").status_code == 302


def test_staff_with_an_authenticator_still_gives_the_code(client, provider, staff_user):
    device = tf.app_device_for_enrolment(staff_user)
    tf.enrol_confirm(staff_user, f"{totp(device.bin_key):06d}")
    response = sso_round_trip(client, provider, staff_claims(staff_user.email))
    assert response["Location"] == reverse("login_code")
    assert client.get("/staff/").status_code == 302
    device = TOTPDevice.objects.get(user=staff_user)
    code = f"{totp(device.bin_key, drift=1):06d}"
    assert client.post(reverse("login_code"), {"code": code}).status_code == 302
    assert client.get("/staff/").status_code == 200


def test_staff_required_to_enrol_enrol_after_sso(client, provider, staff_user, settings):
    settings.STAFF_REQUIRE_2FA = True
    response = sso_round_trip(client, provider, staff_claims(staff_user.email))
    assert response["Location"] == reverse("two_factor_setup")
    assert client.get("/staff/").status_code == 302


def test_provider_errors_are_pages_not_500s(client, provider, staff_user):
    callback = reverse("openid_connect_callback", args=["sso"])
    for query in (
        {"error": "access_denied"},
        {"code": "code-1", "state": "forged"},
        {"code": "code-1"},
        {},
        {"state": "\x00", "code": "x" * 5000},
    ):
        response = client.get(callback, query)
        assert response.status_code == 400, (query, response.status_code)
        assert b"Single sign-on did not complete" in response.content
    assert client.get("/staff/").status_code == 302
    # A wrong code at the token endpoint.
    provider.claims = staff_claims(staff_user.email)
    start = client.post(reverse("openid_connect_login", args=["sso"]))
    state = parse_qs(urlparse(start["Location"]).query)["state"][0]
    response = client.get(callback, {"code": "wrong", "state": state})
    assert response.status_code == 400
    assert client.get("/staff/").status_code == 302


def test_provider_unreachable(client, provider):
    provider.server.shutdown()
    provider.server.server_close()
    response = client.post(reverse("openid_connect_login", args=["sso"]))
    assert response.status_code == 502
    assert b"cannot be reached" in response.content


def test_a_get_on_the_start_address_goes_to_the_login_page(client, provider):
    response = client.get(reverse("openid_connect_login", args=["sso"]))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert not provider.requests


def test_password_login_still_works_with_sso_on(client, provider, staff_user):
    from tests.conftest import TEST_PASSWORD

    response = client.post(
        reverse("login"), {"username": staff_user.email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 302
    assert client.get("/staff/").status_code == 200


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"OIDC_PROVIDER_URL": "https://id.example.com"}, "OIDC_CLIENT_ID, OIDC_CLIENT_SECRET"),
        (
            {
                "OIDC_PROVIDER_URL": "http://id.example.com",
                "OIDC_CLIENT_ID": "x",
                "OIDC_CLIENT_SECRET": "s3cr3t-pw",
            },
            "must be an https:// address",
        ),
    ],
)
def test_incomplete_or_plain_http_sso_settings_refuse_to_start(extra, says):
    result = _manage("check", env={**PRODUCTION_ENV, **extra})
    assert result.returncode != 0
    assert says in result.stderr, result.stderr[-800:]
    assert "s3cr3t-pw" not in result.stderr + result.stdout


def test_complete_sso_settings_pass_the_deploy_check():
    env = {
        **PRODUCTION_ENV,
        "OIDC_PROVIDER_URL": "https://id.example.com/realms/staff",
        "OIDC_CLIENT_ID": "portal",
        "OIDC_CLIENT_SECRET": "s3cr3t-pw",
        "STAFF_REQUIRE_2FA": "true",
    }
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
