import pytest

from portal import health

pytestmark = pytest.mark.django_db


def test_healthz_ok_when_everything_is_reachable(client, aws):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert set(body["checks"]) == {"database", "broker", "aws"}
    assert all(check["ok"] for check in body["checks"].values())


def test_healthz_503_when_aws_is_unreachable(client, settings):
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    assert body["checks"]["aws"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


def test_healthz_503_when_broker_is_unreachable(client, aws, monkeypatch):
    def broken():
        raise ConnectionError("broker down")

    monkeypatch.setitem(health.CHECKS, "broker", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["detail"] == "ConnectionError: broker down"


def test_healthz_answers_plain_http_where_pages_redirect_to_https(client, aws, settings):
    """A load balancer's health check calls the instance over HTTP, without X-Forwarded-Proto."""
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    login = client.get("/accounts/login/")
    assert login.status_code == 301 and login["Location"].startswith("https://")
