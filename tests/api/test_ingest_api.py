"""/api/v1/usage/ingest-runs/: staff queue a re-ingest of finished days."""

import datetime as dt

import pytest

from usage.models import IngestRun

from .conftest import error_of

pytestmark = pytest.mark.django_db

URL = "/api/v1/usage/ingest-runs/"


def test_queue_and_list(rw, ro, django_capture_on_commit_callbacks):
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    body = {"start": str(yesterday - dt.timedelta(days=2)), "end": str(yesterday)}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = rw.post(URL, body, HTTP_IDEMPOTENCY_KEY="reingest-1")
    assert response.status_code == 202, response.json()
    assert response.json()["days_total"] == 3 and response.json()["status"] == "queued"
    assert len(callbacks) == 1  # the task is queued after commit
    again = rw.post(URL, body, HTTP_IDEMPOTENCY_KEY="reingest-1")
    assert again.status_code == 202 and IngestRun.objects.count() == 1
    assert ro.get(URL).json()["results"][0]["id"] == response.json()["id"]
    assert ro.get(f"{URL}{response.json()['id']}/").status_code == 200


def test_refusals(rw, ro, customer_api):
    today = dt.datetime.now(dt.UTC).date()
    response = rw.post(URL, {"start": str(today), "end": str(today)})
    assert response.status_code == 400 and error_of(response)["type"] == "validation_error"
    assert rw.post(URL, {"start": "nope"}).status_code == 400
    assert ro.post(URL, {"start": "2026-01-01", "end": "2026-01-02"}).status_code == 403
    assert customer_api.get(URL).status_code == 403
