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
