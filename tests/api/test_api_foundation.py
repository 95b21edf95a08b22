"""API groundwork: key auth and scopes, one error shape, idempotency, throttling, schema."""

import re

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import timezone
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory, force_authenticate

from core.api.idempotency import IdempotentCreateMixin
from core.models import ApiKey, IdempotencyRecord
from portal.api.keys import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


def _key(staff_user, scope=ApiKey.Scope.READ, **kwargs):
    return api_key_create(name="crm-sync", scope=scope, created_by=staff_user, **kwargs)


def test_api_key_is_stored_only_as_hash(staff_user):
    issued = _key(staff_user)
    assert issued.plaintext.startswith("bpk_")
    row = ApiKey.objects.get()
    assert issued.plaintext not in {row.key_hash, row.display_prefix}
    assert len(row.key_hash) == 64
    assert row.owner.is_service_account and row.owner.is_staff
    assert not row.owner.has_usable_password()


def test_a_new_api_keys_repr_never_shows_the_key(staff_user):
    """repr() is what tracebacks, error reports and `%r` log lines print."""
    issued = _key(staff_user)
    assert issued.plaintext not in repr(issued)
    assert issued.plaintext[4:] not in f"{issued!r} {issued!s}"


def test_me_with_api_key(api, staff_user):
    issued = _key(staff_user)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    response = api.get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json()["role"] == "staff"
    assert response.json()["api_key_scope"] == "read"
    assert ApiKey.objects.get().last_used_at is not None


@pytest.mark.parametrize("header", ["Bearer bpk_nope", "Bearer", "Bearer a b"])
def test_bad_keys_get_the_error_shape(api, header):
    api.credentials(HTTP_AUTHORIZATION=header)
    response = api.get("/api/v1/me/")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert error["message"] and error["request_id"] and error["code"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_and_expired_keys_stop_working(api, staff_user):
    revoked = _key(staff_user)
    api_key_revoke(api_key=revoked.api_key)
    expired = _key(staff_user, expires_at=timezone.now() - timezone.timedelta(seconds=1))
    for issued in (revoked, expired):
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
        assert api.get("/api/v1/me/").status_code == 401


def test_anonymous_gets_401_json(api):
    response = api.get("/api/v1/me/")
    assert response.status_code in (401, 403)
    assert response.json()["error"]["type"] == "authentication_error"


def test_customer_session_sees_own_role(api, customer_user):
    api.force_authenticate(customer_user)
    body = api.get("/api/v1/me/").json()
    assert body == {
        "email": customer_user.email,
        "role": "customer",
        "customer_id": str(customer_user.customer_id),
        "api_key_scope": None,
    }


def test_unknown_endpoint_is_json_404(api, staff_user):
    api.force_authenticate(staff_user)
    response = api.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_such_endpoint"


def test_request_id_is_echoed(api, staff_user):
    response = api.get("/api/v1/me/", HTTP_X_REQUEST_ID="abc-123")
    assert response.json()["error"]["request_id"] == "abc-123"


def test_throttle_per_key(api, staff_user):
    issued = _key(staff_user)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(rate_limit_per_minute=3)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    codes = [api.get("/api/v1/me/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = api.get("/api/v1/me/")
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert int(response["Retry-After"]) > 0


def test_schema_and_docs_served_without_cdn(api, staff_user):
    api.force_authenticate(staff_user)
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert schema.json()["openapi"].startswith("3.")
    assert "/api/v1/me/" in schema.json()["paths"]
    docs = api.get("/api/docs/")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.content.decode()
    redoc = api.get("/api/redoc/")
    assert redoc.status_code == 200
    assert "redoc.standalone.js" in redoc.content.decode()
    for page in (docs, redoc):
        html = page.content.decode()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html), "another host"
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert len(assets) >= 1
        for asset in assets:  # each one is a file the app serves itself
            assert asset.startswith(settings.STATIC_URL), asset
            assert finders.find(asset.removeprefix(settings.STATIC_URL)), asset


def test_staff_api_key_page_sets_the_keys_rate_limit(staff_client):
    response = staff_client.post(
        reverse("staff:api_keys"), {"name": "slow", "scope": "read", "rate_limit_per_minute": "2"}
    )
    plaintext = response.context["issued"].plaintext
    assert ApiKey.objects.get().rate_limit_per_minute == 2
    assert ">2</td>" in staff_client.get(reverse("staff:api_keys")).content.decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert [api.get("/api/v1/me/").status_code for _ in range(3)] == [200, 200, 429]
    refused = staff_client.post(
        reverse("staff:api_keys"), {"name": "x", "scope": "read", "rate_limit_per_minute": "0"}
    )
    assert refused.status_code == 200 and ApiKey.objects.count() == 1


def test_staff_api_key_page_shows_key_once_and_revokes(staff_client):
    response = staff_client.post(reverse("staff:api_keys"), {"name": "ci", "scope": "read"})
    assert response.status_code == 200
    plaintext = response.context["issued"].plaintext
    assert plaintext in response.content.decode()
    again = staff_client.get(reverse("staff:api_keys"))
    assert plaintext not in again.content.decode()
    key = ApiKey.objects.get()
    staff_client.post(reverse("staff:api_key_revoke", args=[key.pk]), {"confirm": "1"})
    key.refresh_from_db()
    assert key.revoked_at is not None


class _IssueKey(generics.GenericAPIView):
    """A creating endpoint for the test: issues an API key and returns its plaintext once."""

    def post(self, request):
        return self.create(request)

    def create(self, request):
        issued = api_key_create(name=request.data["name"], scope="read", created_by=request.user)
        return Response({"id": issued.api_key.pk, "key": issued.plaintext}, status=201)


class _CreateKeyView(IdempotentCreateMixin, _IssueKey):
    idempotency_redact_fields = ("key",)


def _post(user, body, key):
    request = APIRequestFactory().post(
        "/api/v1/test-create/", body, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    force_authenticate(request, user=user)
    response = _CreateKeyView.as_view()(request)
    response.render()
    return response


def test_idempotency_key_replays_without_running_twice(staff_user):
    first = _post(staff_user, {"name": "a"}, "key-1")
    assert first.status_code == 201
    assert first.data["key"].startswith("bpk_")
    replay = _post(staff_user, {"name": "a"}, "key-1")
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.data == {"id": first.data["id"]}  # the plaintext is never stored or replayed
    assert ApiKey.objects.count() == 1
    stored = IdempotencyRecord.objects.get()
    assert first.data["key"] not in str(stored.response_body)


def test_idempotency_key_with_other_body_is_refused(staff_user):
    _post(staff_user, {"name": "a"}, "key-2")
    clash = _post(staff_user, {"name": "b"}, "key-2")
    assert clash.status_code == 422
    assert clash.data["error"]["code"] == "key_reused"
    assert ApiKey.objects.count() == 1


def test_idempotency_keys_are_per_caller(staff_user):
    from core.models import User

    other = User.objects.create_user("other@example.com", "x" * 12, is_staff=True)
    _post(staff_user, {"name": "a"}, "shared")
    assert _post(other, {"name": "a"}, "shared").status_code == 201
    assert ApiKey.objects.count() == 2


def test_creating_and_revoking_a_key_is_audited_without_the_key(staff_client, staff_user):
    from customers.models import AuditEvent

    response = staff_client.post(reverse("staff:api_keys"), {"name": "crm", "scope": "read"})
    plaintext = response.context["issued"].plaintext
    key = ApiKey.objects.get()
    staff_client.post(reverse("staff:api_key_revoke", args=[key.pk]), {"confirm": "1"})
    staff_client.post(reverse("staff:api_key_revoke", args=[key.pk]), {"confirm": "1"})  # again

    events = list(AuditEvent.objects.filter(object_type="api_key").order_by("id"))
    assert [e.action for e in events] == ["api_key.created", "api_key.revoked"]
    assert all(e.actor == staff_user and e.object_id == str(key.pk) for e in events)
    assert events[0].after["scope"] == "read" and events[0].source_ip == "127.0.0.1"
    assert events[1].before["revoked_at"] is None and events[1].after["revoked_at"]
    stored = repr([(e.before, e.after) for e in events])
    assert plaintext not in stored and key.key_hash not in stored
    assert plaintext[8:-4] not in stored  # only the display prefix and last four
    listed = staff_client.get("/api/v1/audit-events/?object_type=api_key").json()["results"]
    assert sorted(e["action"] for e in listed) == ["api_key.created", "api_key.revoked"]
