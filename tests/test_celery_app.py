import pytest
from django.core.cache import cache

from portal.celery import app
from portal.tasks import HEARTBEAT_CACHE_KEY, heartbeat


def test_beat_schedule_names_registered_tasks():
    app.loader.import_default_modules()
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in app.tasks, entry["task"]


@pytest.mark.django_db
def test_heartbeat_task_records_time():
    cache.delete(HEARTBEAT_CACHE_KEY)
    result = heartbeat.delay()
    assert cache.get(HEARTBEAT_CACHE_KEY) == result.get()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_a_task_sent_over_the_broker(celery_worker_on_broker):
    import time

    cache.delete(HEARTBEAT_CACHE_KEY)
    heartbeat.apply_async()
    deadline = time.monotonic() + 20
    while cache.get(HEARTBEAT_CACHE_KEY) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.get(HEARTBEAT_CACHE_KEY) is not None
