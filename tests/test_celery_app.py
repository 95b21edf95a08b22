import time

import pytest

from core.heartbeats import BEAT, WORKER, beat_heartbeat_interval, worker_heartbeat_interval
from core.models import Heartbeat
from portal.celery import app
from portal.tasks import heartbeat

# Tasks delivered again when the worker process running them dies (acks late + reject on
# worker lost): only those whose second run is safe. docs/architecture.md says why for each.
REDELIVERED_WHEN_THE_WORKER_IS_LOST = {
    "customers.tasks.deliver_customer_outbox",
    "customers.tasks.deliver_price_outbox",
    "customers.tasks.sweep_outbox",
    "customers.tasks.reconcile_dynamodb",
    "customers.tasks.send_token_expiry_warnings",
    "usage.tasks.ingest_nightly_task",
    "usage.tasks.ingest_run_task",
    "usage.tasks.resume_stale_ingest_runs_task",
    "usage.tasks.check_alerts_task",
    "usage.tasks.deliver_alert_task",
    "usage.tasks.deliver_alerts_task",
    "billing.tasks.invoice_run_monthly",
    "billing.tasks.invoice_run_task",
}
OUR_APPS = ("portal.", "customers.", "usage.", "billing.")


def test_beat_schedule_names_registered_tasks():
    app.loader.import_default_modules()
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in app.tasks, entry["task"]


def test_only_tasks_safe_to_run_twice_are_redelivered_after_a_lost_worker():
    app.loader.import_default_modules()
    ours = {name: task for name, task in app.tasks.items() if name.startswith(OUR_APPS)}
    assert set(ours) >= REDELIVERED_WHEN_THE_WORKER_IS_LOST
    redelivered = {name for name, task in ours.items() if task.reject_on_worker_lost}
    assert redelivered == REDELIVERED_WHEN_THE_WORKER_IS_LOST
    # Emails that a second run would send again stay acknowledged when their worker dies.
    for name in (
        "customers.tasks.send_customer_invite",
        "usage.tasks.send_summaries_task",
        "billing.tasks.invoice_email_send",
        "billing.tasks.low_balance_email_send",
    ):
        assert not ours[name].reject_on_worker_lost, name
    # The flag only matters with late acknowledgement, and is not switched on for all tasks.
    assert app.conf.task_acks_late is True
    assert not app.conf.task_reject_on_worker_lost


def test_worker_heartbeat_is_scheduled_well_within_the_stale_threshold(settings):
    entry = app.conf.beat_schedule["portal-heartbeat"]
    assert entry["task"] == "portal.tasks.heartbeat"
    every = entry["schedule"]  # seconds
    assert every == worker_heartbeat_interval() <= settings.HEALTH_HEARTBEAT_STALE_SECONDS / 3
    assert entry["options"]["expires"] == every
    settings.HEALTH_HEARTBEAT_STALE_SECONDS = 12
    assert worker_heartbeat_interval() == 5
    assert beat_heartbeat_interval() == 4


@pytest.mark.django_db
def test_heartbeat_task_records_time():
    result = heartbeat.delay()
    row = Heartbeat.objects.get(name=WORKER)
    assert row.at.isoformat() == result.get()
    assert row.pid and row.host


@pytest.mark.django_db(transaction=True)  # beat manages its own connection, as in production
def test_beat_records_its_heartbeat_and_sends_a_first_worker_heartbeat(tmp_path, monkeypatch):
    from portal.beat import HeartbeatScheduler

    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, **options: sent.append((name, options)))
    scheduler = HeartbeatScheduler(app=app, schedule_filename=str(tmp_path / "schedule"))
    scheduler.schedule.clear()  # this test is about the heartbeat, not the jobs
    try:
        next_tick = scheduler.tick()
        first = Heartbeat.objects.get(name=BEAT).at
        assert 0 < next_tick <= beat_heartbeat_interval()
        assert [name for name, _ in sent] == ["portal.tasks.heartbeat"]
        scheduler.tick()  # within the interval: neither written nor sent again
        assert Heartbeat.objects.get(name=BEAT).at == first
        assert len(sent) == 1
        scheduler._last_heartbeat -= beat_heartbeat_interval()
        scheduler.tick()
        assert Heartbeat.objects.get(name=BEAT).at > first
    finally:
        scheduler.close()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_a_task_sent_over_the_broker(celery_worker_on_broker):
    heartbeat.apply_async()
    deadline = time.monotonic() + 20
    while not Heartbeat.objects.filter(name=WORKER).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Heartbeat.objects.filter(name=WORKER).exists()
