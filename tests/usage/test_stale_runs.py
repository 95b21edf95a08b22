"""A run whose worker died mid-way is resumed at its first day not done, and finishes."""

import datetime as dt

import pytest
from django.utils import timezone

from usage.models import IngestedDay, IngestRun
from usage.services import ingest_run_create, ingest_runs_resume_stale

from .events import make_event, write_events

DAYS = [dt.date(2026, 11, 18), dt.date(2026, 11, 19), dt.date(2026, 11, 20)]


def _at(day, hour=12):
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC)


@pytest.fixture
def interrupted_run(dynamodb, events_dir, customer):
    """A run claimed by a worker that ingested the first day and then vanished."""
    for day in DAYS:
        write_events(events_dir, [make_event(customer.pk, when=_at(day)) for _ in range(2)])
    run = ingest_run_create(days=DAYS, trigger="staff")
    two_hours_ago = timezone.now() - dt.timedelta(hours=2)
    IngestedDay.objects.create(day=DAYS[0], engine="duckdb", requests=99)  # its day 1
    IngestRun.objects.filter(pk=run.pk).update(
        status=IngestRun.Status.RUNNING, started_at=two_hours_ago, progress_at=two_hours_ago,
        days_done=1,
    )  # fmt: skip
    return run


def test_a_stale_run_is_resumed_from_its_first_day_not_done(
    interrupted_run, settings, django_capture_on_commit_callbacks
):
    settings.USAGE_INGEST_STALE_MINUTES = 90
    with django_capture_on_commit_callbacks(execute=True):
        assert ingest_runs_resume_stale() == [interrupted_run.pk]

    run = IngestRun.objects.get(pk=interrupted_run.pk)
    assert run.status == IngestRun.Status.SUCCEEDED and run.days_done == 3
    assert run.errors[0]["stage"] == "resumed" and run.errors[0]["day"] == "2026-11-19"
    assert "no progress since" in run.errors[0]["error"]
    # Days 2 and 3 were ingested by the resumed run; day 1 (done before) was not redone.
    assert IngestedDay.objects.get(day=DAYS[0]).requests == 99
    assert [IngestedDay.objects.get(day=d).requests for d in DAYS[1:]] == [2, 2]


def test_a_run_still_making_progress_is_left_alone(interrupted_run, settings):
    settings.USAGE_INGEST_STALE_MINUTES = 90
    IngestRun.objects.filter(pk=interrupted_run.pk).update(progress_at=timezone.now())
    assert ingest_runs_resume_stale() == []
    assert IngestRun.objects.get(pk=interrupted_run.pk).status == IngestRun.Status.RUNNING


def test_the_threshold_is_a_setting(interrupted_run, settings):
    settings.USAGE_INGEST_STALE_MINUTES = 180  # two hours without progress is not yet stale
    assert ingest_runs_resume_stale() == []


def test_a_sweep_resumes_a_run_once(interrupted_run, settings, django_capture_on_commit_callbacks):
    settings.USAGE_INGEST_STALE_MINUTES = 90
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert ingest_runs_resume_stale() == [interrupted_run.pk]
        assert ingest_runs_resume_stale() == []  # already queued again
    assert len(queued) == 1


def test_the_sweep_is_scheduled():
    from portal.celery import app

    app.loader.import_default_modules()
    app.finalize()
    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "usage.tasks.resume_stale_ingest_runs_task" in tasks
