"""The staff invoice run is queued (a Celery task after commit) and recorded as an InvoiceRun
with its progress and outcome; the drafts stay all or nothing and idempotent."""

from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing import invoice_run as run_module
from billing.models import Invoice, InvoiceRun
from billing.services import (
    InvoiceRunBusy,
    invoice_run_execute,
    invoice_run_request,
    plan_assign,
)
from billing.tasks import invoice_run_monthly
from core.models import User
from customers.models import Customer

from .conftest import OCTOBER, TWO_TIERS, written_around_the_rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_customers(customer, other_customer, price_book, add_usage):
    third = Customer.objects.create(name="Third Co", contact_email="t@third.example")
    for c in (customer, other_customer, third):
        add_usage(c, date(2026, 10, 5), requests=3, input_tokens=1000, output_tokens=500)
    return [customer, other_customer, third]


def _queue(staff_client, month="2026-10", **kw):
    return staff_client.post(reverse("staff:billing_run"), {"month": month}, **kw)


def test_queueing_creates_a_run_that_the_task_completes_after_commit(
    staff_client, staff_user, three_customers, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _queue(staff_client)
        # Nothing runs inside the request: the task is queued on commit.
        run = InvoiceRun.objects.get()
        assert run.status == InvoiceRun.Status.QUEUED and not Invoice.objects.exists()
    assert response.status_code == 302 and response.url == reverse("staff:billing_runs")
    assert len(callbacks) == 1
    run.refresh_from_db()
    assert run.status == InvoiceRun.Status.SUCCEEDED
    assert (run.period_start, run.trigger, run.requested_by) == (OCTOBER, "staff", staff_user)
    assert (run.customers_total, run.customers_rated, run.drafts_created) == (3, 3, 3)
    assert run.drafts_skipped == 0 and run.error == ""
    assert run.started_at and run.finished_at and run.started_at <= run.finished_at
    assert Invoice.objects.filter(period_start=OCTOBER).count() == 3

    # Idempotent as before: a second run adds nothing and says the drafts were there.
    with django_capture_on_commit_callbacks(execute=True):
        _queue(staff_client)
    again = InvoiceRun.objects.order_by("-pk").first()
    assert (again.status, again.drafts_created, again.drafts_skipped) == ("succeeded", 0, 3)
    assert Invoice.objects.count() == 3


def test_progress_is_written_while_rating_before_the_insert(three_customers, monkeypatch):
    monkeypatch.setattr(run_module, "CHUNK", 1)
    run = invoice_run_request(period_start=OCTOBER, trigger="staff", queue=False)
    seen_while_rating, seen_at_insert = [], []
    real_rate, real_insert = run_module.rate_usage, run_module._insert_chunk

    def rate(*args, **kwargs):
        seen_while_rating.append(InvoiceRun.objects.values_list("customers_rated", flat=True)[0])
        return real_rate(*args, **kwargs)

    def insert(drafts):
        row = InvoiceRun.objects.values("customers_rated", "customers_total").get()
        seen_at_insert.append((row["customers_rated"], row["customers_total"]))
        return real_insert(drafts)

    monkeypatch.setattr(run_module, "rate_usage", rate)
    monkeypatch.setattr(run_module, "_insert_chunk", insert)
    invoice_run_execute(run_id=run.pk)
    # Every chunk (here one customer) of the rating phase wrote its progress.
    assert seen_while_rating == [0, 1, 2]
    assert seen_at_insert == [(3, 3)] * 3
    run.refresh_from_db()
    assert (run.status, run.customers_rated, run.drafts_created) == ("succeeded", 3, 3)
    assert run.progress_percent == 100


def test_a_failed_insert_marks_the_run_failed_and_leaves_no_draft(three_customers, monkeypatch):
    monkeypatch.setattr(run_module, "CHUNK", 1)
    real_insert, calls = run_module._insert_chunk, []

    def failing_second_chunk(drafts):
        calls.append(drafts)
        if len(calls) == 2:
            raise DatabaseError("connection lost")
        return real_insert(drafts)

    monkeypatch.setattr(run_module, "_insert_chunk", failing_second_chunk)
    run = invoice_run_execute(
        run_id=invoice_run_request(period_start=OCTOBER, trigger="staff", queue=False).pk
    )
    assert run.status == InvoiceRun.Status.FAILED
    assert run.error == "DatabaseError: connection lost"
    assert run.finished_at is not None
    assert not Invoice.objects.exists()  # the first chunk was rolled back with the rest
    # The progress was written outside the insert transaction, so its rollback kept it.
    assert (run.customers_rated, run.customers_total, run.drafts_created) == (3, 3, 0)


def test_a_broken_plan_marks_the_run_failed_with_its_error(
    three_customers, make_plan, django_capture_on_commit_callbacks
):
    broken = make_plan(kind="tiered", tiers=TWO_TIERS, name="Broken")
    plan_assign(customer=three_customers[-1], plan=broken, effective_from=date(2026, 9, 1))
    written_around_the_rule(broken, tiers=[{"up_to": 5, "unit_price": "1"}])
    with django_capture_on_commit_callbacks(execute=True):
        run = invoice_run_request(period_start=OCTOBER, trigger="staff")
    run.refresh_from_db()
    assert run.status == InvoiceRun.Status.FAILED
    assert "Plan 'Broken' cannot be applied" in run.error
    assert not Invoice.objects.exists()


def test_a_second_run_of_a_month_is_refused_while_one_is_queued_or_running(
    staff_client, three_customers, django_capture_on_commit_callbacks
):
    first = invoice_run_request(period_start=OCTOBER, trigger="monthly", queue=False)
    for status in (InvoiceRun.Status.QUEUED, InvoiceRun.Status.RUNNING):
        InvoiceRun.objects.filter(pk=first.pk).update(status=status)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = _queue(staff_client, follow=True)
        assert not callbacks
        page = response.content.decode()
        assert "Not queued: An invoice run for October 2026 is already" in page
        assert f"run #{first.pk}" in page
        assert InvoiceRun.objects.count() == 1
    # Another month is not blocked.
    with django_capture_on_commit_callbacks(execute=True):
        _queue(staff_client, month="2026-09")
    assert InvoiceRun.objects.filter(period_start=date(2026, 9, 1), status="succeeded").exists()
    # The database refuses a second active run too (two requests racing past the check).
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceRun.objects.create(period_start=OCTOBER)
    # Once the first has finished, the month can be run again.
    InvoiceRun.objects.filter(pk=first.pk).update(status=InvoiceRun.Status.SUCCEEDED)
    assert invoice_run_request(period_start=OCTOBER, trigger="staff", queue=False).pk


def test_a_duplicated_task_does_not_run_twice(three_customers, monkeypatch):
    run = invoice_run_request(period_start=OCTOBER, trigger="staff", queue=False)
    calls = []
    real = run_module.invoice_run
    monkeypatch.setattr(run_module, "invoice_run", lambda **kw: calls.append(kw) or real(**kw))
    assert invoice_run_execute(run_id=run.pk).status == "succeeded"
    assert invoice_run_execute(run_id=run.pk).status == "succeeded"
    assert len(calls) == 1 and Invoice.objects.count() == 3


def test_a_stale_run_no_longer_blocks_its_month(three_customers):
    lost = invoice_run_request(period_start=OCTOBER, trigger="staff", queue=False)
    InvoiceRun.objects.filter(pk=lost.pk).update(
        status=InvoiceRun.Status.RUNNING,
        progress_at=timezone.now() - timedelta(minutes=run_module.STALE_MINUTES - 1),
    )
    with pytest.raises(InvoiceRunBusy):  # quiet, but not for long enough
        invoice_run_request(period_start=OCTOBER, trigger="staff", queue=False)
    InvoiceRun.objects.filter(pk=lost.pk).update(
        progress_at=timezone.now() - timedelta(minutes=run_module.STALE_MINUTES + 1)
    )
    new = invoice_run_request(period_start=OCTOBER, trigger="staff", queue=False)
    lost.refresh_from_db()
    assert lost.status == InvoiceRun.Status.FAILED and "No progress" in lost.error
    assert invoice_run_execute(run_id=new.pk).drafts_created == 3


def test_a_month_not_ended_is_refused_before_queueing(staff_client, customer):
    response = _queue(staff_client, month="2099-01", follow=True)
    assert "January 2099 has not ended yet" in response.content.decode()
    assert not InvoiceRun.objects.exists()


def test_monthly_task_and_command_record_runs(three_customers):
    result = invoice_run_monthly.delay("2026-10-01").get()
    assert (result["status"], result["created"]) == ("succeeded", 3)
    monthly = InvoiceRun.objects.get(pk=result["run"])
    assert monthly.trigger == "monthly" and monthly.requested_by is None
    call_command("invoice_run", "--month", "2026-09")
    assert InvoiceRun.objects.filter(trigger="command", status="succeeded").count() == 1
    # While another run of the month is under way, the monthly task leaves it the work.
    busy = invoice_run_request(period_start=date(2026, 8, 1), trigger="staff", queue=False)
    refused = invoice_run_monthly.delay("2026-08-01").get()
    assert refused["created"] == 0 and f"run #{busy.pk}" in refused["refused"]


def test_runs_page_polls_while_a_run_is_active(staff_client, three_customers):
    run = invoice_run_request(period_start=OCTOBER, trigger="staff", queue=False)
    InvoiceRun.objects.filter(pk=run.pk).update(
        status="running", customers_total=4, customers_rated=1
    )
    page = staff_client.get(reverse("staff:billing_runs")).content.decode()
    assert 'hx-trigger="every 3s"' in page and 'aria-valuenow="25"' in page
    assert "<script>" not in page  # the CSP allows no inline script
    InvoiceRun.objects.filter(pk=run.pk).update(status="succeeded", drafts_created=3)
    page = staff_client.get(reverse("staff:billing_runs")).content.decode()
    assert "hx-trigger" not in page and 'aria-valuenow="100"' in page


def test_runs_page_is_refused_to_customers(customer_client, client):
    url = reverse("staff:billing_runs")
    assert customer_client.get(url).status_code == 403
    client.logout()
    assert client.get(url).status_code == 302


def test_runs_page_queries_are_bounded(staff_client, db):
    def make(n):
        for i in range(n):
            user = User.objects.create_user(
                email=f"staff{InvoiceRun.objects.count()}@example.com", password="x", is_staff=True
            )
            InvoiceRun.objects.create(
                period_start=date(2000 + InvoiceRun.objects.count(), 1, 1),
                status="succeeded",
                requested_by=user,
            )

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert staff_client.get(reverse("staff:billing_runs")).status_code == 200
        return len(ctx.captured_queries)

    make(2)
    few = count()
    make(23)
    assert count() == few
