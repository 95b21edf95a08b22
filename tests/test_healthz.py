from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core.heartbeats import BEAT, WORKER, heartbeat_record
from customers.models import SyncOutbox
from portal import health
from portal.celery import app as celery_app

pytestmark = pytest.mark.django_db

ALL_CHECKS = {"database", "broker", "aws", "worker", "beat", "outbox"}


def test_healthz_ok_when_everything_is_reachable(client, aws):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert set(body["checks"]) == ALL_CHECKS
    assert all(check["ok"] for check in body["checks"].values())
    # Tasks run eagerly here (the test settings): there is no worker or beat to report on.
    assert body["checks"]["worker"]["detail"] == "not applicable"
    assert body["checks"]["beat"]["detail"] == "not applicable"


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


# --- worker, beat and outbox ------------------------------------------------------------------


@pytest.fixture
def with_worker(settings, aws):
    """Tasks go to a worker (as in production), with a short threshold."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    settings.HEALTH_HEARTBEAT_STALE_SECONDS = 60
    settings.HEALTH_OUTBOX_STALE_SECONDS = 120
    yield settings
    celery_app.conf.task_always_eager = previous


def _ago(seconds):
    return timezone.now() - timedelta(seconds=seconds)


def test_fresh_worker_and_beat_heartbeats_are_healthy(staff_client, with_worker):
    heartbeat_record(name=WORKER, at=_ago(10))
    heartbeat_record(name=BEAT, at=_ago(2))
    response = staff_client.get("/healthz")
    assert response.status_code == 200, response.json()
    checks = response.json()["checks"]
    assert checks["worker"]["ok"] and checks["worker"]["detail"].startswith(
        "last task ran 10 s ago"
    )
    assert 9 <= checks["worker"]["age_s"] <= 12
    assert checks["beat"]["ok"] and checks["beat"]["detail"].startswith("last tick 2 s ago")
    assert checks["outbox"] == {**checks["outbox"], "ok": True, "detail": "nothing waiting"}


def test_stale_worker_with_live_beat_is_503_naming_the_worker(staff_client, with_worker):
    heartbeat_record(name=WORKER, at=_ago(95))
    heartbeat_record(name=BEAT, at=_ago(3))
    response = staff_client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    assert [name for name, check in body["checks"].items() if not check["ok"]] == ["worker"]
    detail = body["checks"]["worker"]["detail"]
    assert detail.startswith("last task ran 95 s ago") and "stale after 60 s" in detail
    assert "beat is alive" in detail


def test_a_worker_that_never_ran_a_task_is_stale(staff_client, with_worker):
    heartbeat_record(name=BEAT)
    response = staff_client.get("/healthz")
    assert response.status_code == 503
    assert "no worker heartbeat" in response.json()["checks"]["worker"]["detail"]


def test_stale_beat_is_503(staff_client, with_worker):
    heartbeat_record(name=WORKER, at=_ago(5))
    heartbeat_record(name=BEAT, at=_ago(61))
    response = staff_client.get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["worker"]["ok"] is True
    assert checks["beat"]["ok"] is False
    assert checks["beat"]["detail"].startswith("last tick 61 s ago")


def test_old_undelivered_outbox_row_is_503_with_its_age(staff_client, with_worker, customer):
    heartbeat_record(name=WORKER)
    heartbeat_record(name=BEAT)
    delivered = SyncOutbox.objects.create(
        customer=customer, kind="customer", version=1, payload={}, delivered_at=timezone.now()
    )
    waiting = SyncOutbox.objects.create(customer=customer, kind="customer", version=2, payload={})
    SyncOutbox.objects.filter(pk=delivered.pk).update(created_at=_ago(3600))
    SyncOutbox.objects.filter(pk=waiting.pk).update(created_at=_ago(100))
    assert staff_client.get("/healthz").status_code == 200  # delivered rows do not count

    SyncOutbox.objects.filter(pk=waiting.pk).update(created_at=_ago(400))
    response = staff_client.get("/healthz")
    assert response.status_code == 503
    outbox = response.json()["checks"]["outbox"]
    assert outbox["ok"] is False
    assert outbox["detail"].startswith("oldest undelivered change is 400 s old")
    assert 399 <= outbox["age_s"] <= 402


def test_anyone_but_staff_sees_which_check_is_stale_but_no_detail(
    client, customer_client, with_worker, customer
):
    heartbeat_record(name=WORKER, at=_ago(95))
    heartbeat_record(name=BEAT, at=_ago(3))
    row = SyncOutbox.objects.create(customer=customer, kind="customer", version=1, payload={})
    SyncOutbox.objects.filter(pk=row.pk).update(created_at=_ago(400))
    for anyone in (Client(), customer_client):
        response = anyone.get("/healthz")
        assert response.status_code == 503
        checks = response.json()["checks"]
        assert {name: c["detail"] for name, c in checks.items()} == {
            "database": "reachable",
            "broker": "reachable",
            "aws": "reachable",
            "worker": "stale",
            "beat": "fresh",
            "outbox": "stale",
        }
        assert all(set(c) == {"ok", "detail", "ms"} for c in checks.values())
        text = response.content.decode()
        assert "pid" not in text and " s ago" not in text and "age_s" not in text


def test_live_checks_only_this_process_and_its_database(client, with_worker, monkeypatch):
    """What a load balancer probes: a dead worker must not take the web tier out of it."""
    heartbeat_record(name=WORKER, at=_ago(3600))

    def broken():
        raise ConnectionError("broker down")

    monkeypatch.setitem(health.CHECKS, "broker", broken)
    assert client.get("/healthz").status_code == 503
    response = client.get("/healthz/live")
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "checks": {"database": response.json()["checks"]["database"]},
    }

    def db_down():
        raise ConnectionError("database down")

    monkeypatch.setitem(health.CHECKS, "database", db_down)
    response = client.get("/healthz/live")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["detail"] == "unreachable"


def test_live_answers_plain_http_where_pages_redirect_to_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz/live").status_code == 200
