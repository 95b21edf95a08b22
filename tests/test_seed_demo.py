import pytest
from django.core.management import CommandError, call_command

from core.models import User
from customers.models import Customer

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent(settings):
    settings.DEMO_STAFF_PASSWORD = "staff-demo-pass-1"
    settings.DEMO_CUSTOMER_PASSWORD = "customer-demo-pass-1"
    call_command("seed_demo", "--no-usage", verbosity=0)
    call_command("seed_demo", "--no-usage", verbosity=0)
    assert Customer.objects.count() == 5
    staff = User.objects.get(email="staff@example.com")
    customer_user = User.objects.get(email="customer@example.com")
    assert staff.is_staff and staff.check_password("staff-demo-pass-1")
    assert customer_user.customer.name == "Acme Analytics"
    assert customer_user.check_password("customer-demo-pass-1")


def test_seed_demo_needs_passwords(settings):
    settings.DEMO_STAFF_PASSWORD = ""
    with pytest.raises(CommandError, match="DEMO_STAFF_PASSWORD"):
        call_command("seed_demo")


def _usage_figures():
    from django.db.models import Sum

    from billing.models import Invoice
    from usage.models import Alert, IngestedDay, UsageDaily

    return {
        "days": IngestedDay.objects.count(),
        "rows": UsageDaily.objects.count(),
        "tokens": UsageDaily.objects.aggregate(t=Sum("input_tokens"))["t"],
        "issued": Invoice.objects.exclude(status=Invoice.Status.DRAFT).count(),
        "paid": Invoice.objects.filter(status=Invoice.Status.PAID).count(),
        "alerts": Alert.objects.count(),
    }


def test_first_run_has_sixty_days_of_usage_through_the_real_pipeline(
    settings, tmp_path, aws, capsys
):
    """Events in the proxy's format are written per day, imported by the real DuckDB import,
    billed by the real invoice run; a second run adds nothing."""
    import datetime as dt
    import json

    from django.db.models import Sum

    from customers.models import Customer
    from portal.demo_usage import DEMO_DAYS

    settings.DEMO_STAFF_PASSWORD = "staff-demo-pass-1"
    settings.DEMO_CUSTOMER_PASSWORD = "customer-demo-pass-1"
    settings.USAGE_EVENTS_DIR = str(tmp_path)
    call_command("seed_demo")
    files = sorted(tmp_path.glob("usage-events/year=*/month=*/day=*/demo.jsonl"))
    assert len(files) == DEMO_DAYS
    events = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    demo_ids = {str(pk) for pk in Customer.objects.values_list("pk", flat=True)}
    assert {e["customer_id"] for e in events} == demo_ids
    today = dt.datetime.now(dt.UTC).date()
    days = {e["timestamp"][:10] for e in events}
    assert max(days) == (today - dt.timedelta(days=1)).isoformat()  # finished days only
    assert min(days) == (today - dt.timedelta(days=DEMO_DAYS)).isoformat()

    first = _usage_figures()
    assert first["days"] == DEMO_DAYS
    assert first["tokens"] == sum(e["input_tokens"] for e in events)  # imported, all of it
    assert first["issued"] == 5 and first["paid"] == 1  # last month's, one paid
    assert first["alerts"] == _expected_alerts(events, today)  # what the usage crossed
    assert "Demo usage:" in capsys.readouterr().out
    # The same import fills hourly usage and latency per model (usage/operations.py).
    from usage.models import IngestedDay, ModelLatencyDaily, UsageHourly

    assert not IngestedDay.objects.filter(hourly_rows__isnull=True).exists()
    hourly = UsageHourly.objects.aggregate(r=Sum("requests"), i=Sum("input_tokens"))
    assert (hourly["r"], hourly["i"]) == (len(events), first["tokens"])
    assert ModelLatencyDaily.objects.filter(latency_p95_ms__gt=0).count() == DEMO_DAYS * 3
    # Demo usage was never counted by the proxy: it is not reconciled with its counters (which
    # would flag every day, and `make run` seeds before the emulator is up).
    from usage.models import IngestRun, UsageDifference

    assert not UsageDifference.objects.exists()
    assert [run.errors for run in IngestRun.objects.all()] == [[]]

    call_command("seed_demo")
    assert _usage_figures() == first
    assert "already there" in capsys.readouterr().out


def test_events_kept_from_a_deleted_database_are_written_again(settings, tmp_path, aws):
    """`make run` after deleting var/db.sqlite3 but not var/usage-events: the old files name
    customers this database does not have, so they are written again for the new ones."""
    import json

    settings.DEMO_STAFF_PASSWORD = "staff-demo-pass-1"
    settings.DEMO_CUSTOMER_PASSWORD = "customer-demo-pass-1"
    settings.USAGE_EVENTS_DIR = str(tmp_path)
    call_command("seed_demo", "--no-usage", verbosity=0)
    import datetime as dt

    from portal.demo_usage import demo_days
    from proxy import usage as proxy_usage

    stale = {"customer_id": "00000000-0000-4000-8000-00000000dead", "input_tokens": 1}
    for day in demo_days(dt.datetime.now(dt.UTC).date()):
        at = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        folder = tmp_path / proxy_usage.partition(at)
        folder.mkdir(parents=True)
        (folder / "demo.jsonl").write_text(json.dumps(stale) + "\n")
    (folder / "demo.jsonl").write_text("not json\x00\n")  # an unreadable one too
    call_command("seed_demo", verbosity=0)
    figures = _usage_figures()
    assert figures["days"] == 60 and figures["tokens"] > 60
    assert figures["paid"] == 1 and figures["alerts"] > 0
    demo_ids = {str(pk) for pk in Customer.objects.values_list("pk", flat=True)}
    events = [json.loads(line) for f in tmp_path.rglob("demo.jsonl") for line in f.open()]
    assert {e["customer_id"] for e in events} == demo_ids


def test_seed_demo_can_skip_the_usage(settings, tmp_path, aws):
    settings.DEMO_STAFF_PASSWORD = "staff-demo-pass-1"
    settings.DEMO_CUSTOMER_PASSWORD = "customer-demo-pass-1"
    settings.USAGE_EVENTS_DIR = str(tmp_path)
    call_command("seed_demo", "--no-usage", verbosity=0)
    assert not list(tmp_path.iterdir())
    assert _usage_figures()["days"] == 0


def _expected_alerts(events, today) -> int:
    """The monthly quota crossings (50, 80, 100 % of 5,000,000 tokens) of the demo's events:
    last month whole, this month's finished days."""
    import datetime as dt
    from collections import Counter

    this_month = today.replace(day=1)
    last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    used = Counter()
    for e in events:
        day = dt.date.fromisoformat(e["timestamp"][:10])
        month = day.replace(day=1)
        if month in (last_month, this_month):
            used[(e["customer_id"], month)] += e["input_tokens"] + e["output_tokens"]
    return sum(
        1 for tokens in used.values() for percent in (50, 80, 100)
        if tokens * 100 >= 5_000_000 * percent
    )  # fmt: skip


def test_the_demo_month_shows_on_the_customer_list_from_the_proxy_counters(
    settings, tmp_path, aws, client
):
    """After the demo and the stack's counter step (against moto), the staff customer list's
    "this month" columns, read from the proxy's counters, show the demo's usage; a second
    start writes nothing and changes nothing."""
    import datetime as dt

    from django.urls import reverse

    from portal.demo_counters import demo_counters_write, demo_customers
    from portal.demo_usage import day_events
    from usage.counters import day_totals

    settings.DEMO_STAFF_PASSWORD = "staff-demo-pass-1"
    settings.DEMO_CUSTOMER_PASSWORD = "customer-demo-pass-1"
    settings.USAGE_EVENTS_DIR = str(tmp_path)
    call_command("seed_demo", verbosity=0)
    call_command("customers", "reconcile", verbosity=0)  # as the stack does when it starts
    customers = demo_customers()
    assert len(customers) == 5
    # Late in the day, so that even on the 1st of a month "this month" has demo calls.
    now = dt.datetime.combine(dt_today(), dt.time(23), tzinfo=dt.UTC)
    assert demo_counters_write(customers=customers, now=now) > 0

    client.force_login(User.objects.get(email="staff@example.com"))

    def months():
        page = client.get(reverse("staff:customer_list"))
        assert page.status_code == 200
        return {c.name: c.month for c in page.context["page"]}

    first = months()
    for customer in customers:
        month = first[customer.name]
        assert month["tokens"] > 0, customer.name
        assert month["month_spend"] > 0, customer.name
        assert month["quota_percent"] is not None and month["quota_used"] > 0, customer.name
    today = day_totals([str(c.pk) for c in customers], day=dt_today())
    calls = [
        e
        for index, c in enumerate(customers)
        for e in day_events(c, str(c.tokens.first().pk), index, dt_today())
        if e["timestamp"] <= f"{dt_today()}T23:00"
    ]
    assert sum(t.requests for t in today.values()) == len(calls) > 0  # today's demo calls

    assert demo_counters_write(customers=customers, now=now) == 0  # a second start: nothing
    assert months() == first


def dt_today():
    import datetime as dt

    return dt.datetime.now(dt.UTC).date()
