import pytest
from django.test import Client

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


def test_healthz_503_when_broker_is_unreachable(staff_client, aws, monkeypatch):
    def broken():
        raise ConnectionError("broker down")

    monkeypatch.setitem(health.CHECKS, "broker", broken)
    response = staff_client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["detail"] == "ConnectionError: broker down"


def test_healthz_tells_only_staff_why_a_check_failed(customer_client, aws, monkeypatch, caplog):
    """The endpoint is public: exception texts name internal hosts, ports and database users."""

    def broken():
        raise ConnectionError('connection to "db-primary.internal" (10.0.3.7) as user "portal"')

    monkeypatch.setitem(health.CHECKS, "database", broken)
    for anyone in (Client(), customer_client):
        response = anyone.get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert body["checks"]["database"] == {
            "ok": False,
            "detail": "unreachable",
            "ms": body["checks"]["database"]["ms"],
        }
        assert "internal" not in response.content.decode()
        assert body["checks"]["aws"]["detail"] == "reachable"
    assert "db-primary.internal" in caplog.text  # the operator still finds the cause in the log


def test_healthz_answers_plain_http_where_pages_redirect_to_https(client, aws, settings):
    """A load balancer's health check calls the instance over HTTP, without X-Forwarded-Proto."""
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    login = client.get("/accounts/login/")
    assert login.status_code == 301 and login["Location"].startswith("https://")
