"""Demo usage for `make run`: about 60 days of calls of the demo customers, through the real
pipeline, so that every chart, list and invoice page has something to show on the first visit.

1. Usage events in the proxy's own format (proxy.usage.make_event), one file per day
   (`usage-events/year=YYYY/month=MM/day=DD/demo.jsonl` under USAGE_EVENTS_DIR), for the
   finished days only: the live figures of today come from real calls.
2. The real import (usage.services: the DuckDB engine over those files) of every day not yet
   imported.
3. The previous month's invoices through the real invoice run, issued; the first customer's
   marked paid.
4. The monthly token quota's alerts the demo's usage crossed (last month, this month so far),
   recorded as the alert check records them.
5. (When `make run` starts the stack: portal/demo_counters.py writes the proxy's counters of
   this month and today from the same usage, so the live "this month" figures match.)

Deterministic (a seeded random generator per customer and day) and idempotent: a day whose file
exists is not written again, a day already imported is not imported again, the invoice run skips
the invoices that exist, and alerts are unique per crossing. A second run adds nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from billing.invoice_run import invoice_run
from billing.models import Invoice
from billing.services import invoice_issue, invoice_mark_paid
from customers.models import Customer
from proxy import usage as proxy_usage
from usage.alerts import alert_record
from usage.duckdb_engine import DuckDBEngine
from usage.models import Alert, IngestedDay, IngestRun, UsageDaily
from usage.services import ingest_run_create, ingest_run_execute

DEMO_DAYS = 60
DEMO_FILE = "demo.jsonl"
# (model id, alias the caller used, typical input tokens, typical output tokens, weight)
MODELS = [
    ("amazon.nova-micro-v1:0", "nova-micro", 600, 180, 5),
    ("amazon.nova-lite-v1:0", "nova-lite", 1_200, 350, 3),
    ("anthropic.claude-3-haiku-20240307-v1:0", "haiku", 1_800, 400, 2),
]
APPLICATIONS = [("support-bot", "cc-support"), ("search", "cc-platform"), ("summaries", "cc-ops")]
ENVIRONMENTS = ["prod", "prod", "prod", "staging"]


@dataclass
class DemoUsageReport:
    days_written: int = 0
    events_written: int = 0
    days_imported: int = 0
    invoices_issued: int = 0
    invoices_paid: int = 0
    alerts: int = 0


def _rng(*parts) -> random.Random:
    seed = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))  # noqa: S311 (demo data)


def demo_days(today: dt.date, days: int = DEMO_DAYS) -> list[dt.date]:
    """The finished days to fill: the `days` before today."""
    return [today - dt.timedelta(days=n) for n in range(days, 0, -1)]


def calls_per_day(customer_index: int, day: dt.date, rng: random.Random) -> int:
    """Weekdays busier than weekends, bigger customers first, a slow upward trend."""
    base = [260, 160, 90, 60, 30][customer_index % 5]
    weekday = 1.0 if day.weekday() < 5 else 0.35
    trend = 1.0 + (day.toordinal() % 90) / 300
    return max(1, int(base * weekday * trend * rng.uniform(0.75, 1.25)))


def day_events(customer, token_id: str, customer_index: int, day: dt.date) -> list[dict]:
    rng = _rng(customer.name, day.isoformat())
    weights = [m[4] for m in MODELS]
    events = []
    for n in range(calls_per_day(customer_index, day, rng)):
        model_id, alias, typical_in, typical_out, _ = rng.choices(MODELS, weights=weights)[0]
        application, cost_center = rng.choice(APPLICATIONS)
        moment = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(
            seconds=rng.randrange(7 * 3600, 22 * 3600)  # office hours, mostly
        )
        events.append(
            proxy_usage.make_event(
                request_id=f"demo-{customer.pk}-{day.isoformat()}-{n}",
                timestamp=proxy_usage.timestamp(moment),
                customer_id=str(customer.pk),
                token_id=token_id,
                model_id=model_id,
                model_alias=alias,
                input_tokens=int(typical_in * rng.uniform(0.3, 1.8)),
                output_tokens=int(typical_out * rng.uniform(0.2, 1.6)),
                latency_ms=int(rng.uniform(250, 2_500)),
                status="success",
                tags={
                    "applicationId": application,
                    "costCenter": cost_center,
                    "environment": rng.choice(ENVIRONMENTS),
                    "userId": f"user-{rng.randrange(1, 13)}",
                },
                client_ip="127.0.0.1",
                api_format=rng.choice(["openai", "openai", "bedrock"]),
                http_status=200,
                stream=rng.random() < 0.3,
                completed=True,
            )
        )
    return events


def write_events(customers, today: dt.date, events_dir: Path, report: DemoUsageReport) -> None:
    """One file per finished day, written once: an existing file is left as it is, unless it
    holds calls of customers this database does not have (the database was deleted and the
    events kept), which would leave the new demo customers without usage."""
    tokens = {
        c.pk: c.tokens.order_by("created_at").values_list("id", flat=True).first()
        for c in customers
    }
    for day in demo_days(today):
        folder = events_dir / proxy_usage.partition(
            dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        )
        path = folder / DEMO_FILE
        if path.exists() and _only_customers(path, {str(c.pk) for c in customers}):
            continue
        lines = []
        for index, customer in enumerate(customers):
            token_id = str(tokens.get(customer.pk) or "")
            lines += [
                json.dumps(e, separators=(",", ":"))
                for e in day_events(customer, token_id, index, day)
            ]
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text("\n".join(lines) + "\n")
        partial.replace(path)  # a run cut off half-way leaves no half-written day
        report.days_written += 1
        report.events_written += len(lines)


def _only_customers(path: Path, customer_ids: set[str]) -> bool:
    """Whether every call in the events file `path` is one of these customers'."""
    try:
        with path.open(encoding="utf-8") as lines:
            return all(
                json.loads(line)["customer_id"] in customer_ids for line in lines if line.strip()
            )
    except (OSError, ValueError, KeyError, TypeError):
        return False  # unreadable or not ours: written again


def import_days(today: dt.date, events_dir: Path, report: DemoUsageReport) -> None:
    days = demo_days(today)
    done = set(IngestedDay.objects.filter(day__in=days).values_list("day", flat=True))
    todo = [d for d in days if d not in done]
    if not todo:
        return
    run = ingest_run_create(days=todo, trigger=IngestRun.Trigger.COMMAND, engine="duckdb")
    # No reconciliation: the proxy never counted demo usage (every day would show a difference),
    # and `make run` seeds before the emulator starts.
    ingest_run_execute(run_id=run.pk, engine=DuckDBEngine(events_dir), reconcile=False)
    report.days_imported += len(todo)


def backdate(customers, today: dt.date) -> None:
    """Demo customers exist since before the first demo day (so last month is billed)."""
    since = timezone.make_aware(
        dt.datetime.combine(today - dt.timedelta(days=DEMO_DAYS + 30), dt.time())
    )
    Customer.objects.filter(pk__in=[c.pk for c in customers], created_at__gt=since).update(
        created_at=since
    )


def invoices(customers, today: dt.date, report: DemoUsageReport) -> None:
    last_month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    invoice_run(period_start=last_month, today=today)
    mine = Invoice.objects.filter(
        customer__in=customers, period_start=last_month, kind=Invoice.Kind.INVOICE
    ).order_by("customer__name")
    for invoice in mine.filter(status=Invoice.Status.DRAFT):
        invoice_issue(invoice=invoice, today=today)
        report.invoices_issued += 1
    first = mine.filter(customer=customers[0], status=Invoice.Status.ISSUED).first()
    if first is not None:
        invoice_mark_paid(invoice=first)
        report.invoices_paid += 1


ALERT_PERCENTS = (50, 80, 100)


def _month_tokens(customers, first: dt.date, last: dt.date) -> dict:
    """Input + output tokens of the demo's imported usage per customer over [first, last]."""
    rows = (
        UsageDaily.objects.filter(customer__in=customers, day__gte=first, day__lte=last)
        .values("customer_id")
        .annotate(i=Sum("input_tokens"), o=Sum("output_tokens"))
    )
    return {r["customer_id"]: (r["i"] or 0) + (r["o"] or 0) for r in rows}


def alerts(customers, today: dt.date, report: DemoUsageReport) -> None:
    """The monthly token quota's crossings the demo's usage made, recorded as the alert check
    records them: last month's (whole) and this month's finished days; none made up."""
    yesterday = today - dt.timedelta(days=1)
    last_month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    months = [(last_month, today.replace(day=1) - dt.timedelta(days=1))]
    if today.day > 1:
        months.append((today.replace(day=1), yesterday))
    for first, last in months:
        used = _month_tokens(customers, first, last)
        for customer in customers:
            quota = customer.monthly_token_quota
            value = used.get(customer.pk, 0)
            for percent in ALERT_PERCENTS if quota else ():
                if value * 100 >= quota * percent and alert_record(
                    customer=customer, rule=Alert.Rule.MONTHLY_TOKENS, threshold=percent,
                    period=f"{first:%Y-%m}", value=value, limit=quota,
                ):  # fmt: skip
                    report.alerts += 1


def demo_usage_prepare(
    *, customers, today: dt.date | None = None, events_dir=None
) -> DemoUsageReport:
    today = today or timezone.now().astimezone(dt.UTC).date()
    events_dir = Path(events_dir or settings.USAGE_EVENTS_DIR)
    report = DemoUsageReport()
    customers = list(customers)
    backdate(customers, today)
    write_events(customers, today, events_dir, report)
    import_days(today, events_dir, report)
    with transaction.atomic():
        invoices(customers, today, report)
        alerts(customers, today, report)
    return report
