"""Unusual usage: an hour whose requests are far from what the customer usually makes in that
hour of the week.

The method, per customer and UTC hour (say Tuesday 14:00):

* baseline: the requests of the same hour of the week in the previous BASELINE_WEEKS (8) weeks,
  counting only weeks whose day has hourly usage loaded and that are not before the customer's
  first use in the window; at least MIN_WEEKS (4) of them, else the hour is not judged;
* centre: the median of those weeks; spread: the median absolute deviation (MAD) scaled by
  1.4826 (the standard deviation for normal noise), floored at the square root of the median
  (the Poisson noise of a count, so a perfectly regular customer does not get a zero spread)
  and at 1 request;
* score: (requests - median) / spread, shown as "typical spreads" above or below;
* a spike: a score of SPIKE_SCORE (6) or more, at least twice the median and MIN_SPIKE_EXCESS
  (20) requests above it; a silence: a median of at least SILENCE_MIN_BASELINE (20) requests, at
  most a tenth of it in the hour, and a score of -SILENCE_SCORE (3) or lower.

Medians and median absolute deviations ignore the odd unusual week, so a past spike does not
hide the next one. The figures measured on generated series are in docs/usage.md
(tests/usage/test_anomalies.py). Findings are stored per day at each ingest of the day
(UsageAnomaly, replaced with the day), and a recent day's findings raise one alert per customer,
day and kind (Alert rule usage_anomaly).
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Min, Q, Sum

from customers.models import Customer

from .models import Alert, CustomerUsageSettings, IngestedDay, UsageAnomaly, UsageDaily, UsageHourly

BASELINE_WEEKS = 8
MIN_WEEKS = 4
SPIKE_SCORE = 6
MIN_SPIKE_EXCESS = 20
SILENCE_SCORE = 3
SILENCE_MIN_BASELINE = 20
# Findings of days at most this old raise alerts; a catch-up of older days only records them.
ALERT_DAYS = 2
MAD_TO_SD = Decimal("1.4826")
_TENTH = Decimal("0.1")
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def median(values: list) -> Decimal:
    ordered = sorted(Decimal(v) for v in values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _number(value: Decimal) -> str:
    """12,400 or 800.5: whole numbers without decimals, halves with one."""
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value.quantize(_TENTH, rounding=ROUND_HALF_UP):,}"


@dataclass(frozen=True)
class Finding:
    hour: dt.datetime
    kind: str
    requests: int
    baseline: Decimal
    spread: Decimal
    score: Decimal
    weeks: int

    @property
    def explanation(self) -> str:
        """e.g. "Tue 14:00: 12,400 requests, baseline 800 (median of the last 8 Tuesdays at
        14:00), 9.1 typical spreads above"."""
        day_name = _DAY_NAMES[self.hour.weekday()]
        direction = "above" if self.score >= 0 else "below"
        weeks = f"the last {self.weeks} {day_name}s" if self.weeks > 1 else f"last {day_name}"
        return (
            f"{day_name[:3]} {self.hour:%H}:00: {self.requests:,} request"
            f"{'' if self.requests == 1 else 's'}, baseline {_number(self.baseline)} "
            f"(median of {weeks} at {self.hour:%H}:00), {abs(self.score)} typical spread"
            f"{'' if abs(self.score) == 1 else 's'} {direction}"
        )


def assess(*, hour: dt.datetime, requests: int, history: list[int]) -> Finding | None:
    """The finding for one hour given the same hour of earlier weeks, or None when usual (or
    when there are fewer than MIN_WEEKS earlier weeks to judge by)."""
    if len(history) < MIN_WEEKS:
        return None
    centre = median(history)
    mad = median([abs(Decimal(v) - centre) for v in history])
    spread = max(MAD_TO_SD * mad, centre.sqrt() if centre > 0 else Decimal(0), Decimal(1))
    score = ((Decimal(requests) - centre) / spread).quantize(_TENTH, rounding=ROUND_HALF_UP)
    kind = None
    if score >= SPIKE_SCORE and requests >= 2 * centre and requests - centre >= MIN_SPIKE_EXCESS:
        kind = UsageAnomaly.Kind.SPIKE
    elif centre >= SILENCE_MIN_BASELINE and requests <= centre * _TENTH and score <= -SILENCE_SCORE:
        kind = UsageAnomaly.Kind.SILENCE
    if kind is None:
        return None
    return Finding(
        hour=hour,
        kind=kind,
        requests=requests,
        baseline=centre.quantize(Decimal("0.01")),
        spread=spread.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP),
        score=score,
        weeks=len(history),
    )


def find_in_series(
    counts: Mapping[dt.datetime, int],
    hours: Iterable[dt.datetime],
    *,
    first_use: dt.date,
    loaded_days: set[dt.date] | None = None,
) -> list[Finding]:
    """Judge `hours` of one customer's hourly request counts (a missing hour is 0). Earlier
    weeks count when their day is loaded (all when `loaded_days` is None) and not before
    `first_use`."""
    findings = []
    for hour in hours:
        earlier = [hour - dt.timedelta(weeks=n) for n in range(1, BASELINE_WEEKS + 1)]
        history = [
            counts.get(h, 0)
            for h in earlier
            if h.date() >= first_use and (loaded_days is None or h.date() in loaded_days)
        ]
        if finding := assess(hour=hour, requests=counts.get(hour, 0), history=history):
            findings.append(finding)
    return findings


def _day_ranges(days: Iterable[dt.date]) -> Q:
    query = Q(pk__in=[])
    for day in days:
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        query |= Q(hour__gte=start, hour__lt=start + dt.timedelta(days=1))
    return query


def anomalies_detect_day(*, day: dt.date, today: dt.date | None = None) -> list[UsageAnomaly]:
    """Judge every hour of `day` for each active customer seen in the baseline window, replace
    the day's UsageAnomaly rows, and alert on a recent day's findings. Four queries for the
    data, whatever the number of customers."""
    from .services import utc_today

    today = today or utc_today()
    earlier_days = [day - dt.timedelta(weeks=n) for n in range(1, BASELINE_WEEKS + 1)]
    loaded = set(
        IngestedDay.objects.filter(
            day__in=[day, *earlier_days], hourly_rows__isnull=False
        ).values_list("day", flat=True)
    )
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    hours = [start + dt.timedelta(hours=n) for n in range(24)]
    findings: dict = {}
    if day in loaded:
        first_use = dict(
            UsageDaily.objects.filter(
                day__gte=earlier_days[-1], day__lte=day, customer__status=Customer.Status.ACTIVE
            )
            .values_list("customer_id")
            .annotate(first=Min("day"))
        )
        counts: dict = defaultdict(dict)
        rows = (
            UsageHourly.objects.filter(_day_ranges([day, *earlier_days] if first_use else []))
            .values_list("customer_id", "hour")
            .annotate(total=Sum("requests"))
        )
        for customer_id, hour, total in rows:
            counts[customer_id][hour.astimezone(dt.UTC)] = total
        for customer_id, first in first_use.items():
            found = find_in_series(counts[customer_id], hours, first_use=first, loaded_days=loaded)
            if found:
                findings[customer_id] = found
    anomalies = [
        UsageAnomaly(
            customer_id=customer_id,
            hour=f.hour,
            kind=f.kind,
            requests=f.requests,
            baseline=f.baseline,
            spread=f.spread,
            score=f.score,
            weeks=f.weeks,
            explanation=f.explanation[:300],
        )
        for customer_id, found in findings.items()
        for f in found
    ]
    from django.db import transaction

    with transaction.atomic():
        UsageAnomaly.objects.filter(hour__gte=start, hour__lt=start + dt.timedelta(days=1)).delete()
        UsageAnomaly.objects.bulk_create(anomalies)
    if (today - day).days <= ALERT_DAYS and settings.USAGE_ANOMALY_ALERTS:
        anomalies_alert(day=day, findings=findings)
    return anomalies


def anomalies_alert(*, day: dt.date, findings: dict) -> list[Alert]:
    """One alert per customer, day and kind, for the hour furthest from its baseline, unless
    the customer turned anomaly alerts off. Value: the hour's requests; limit: its baseline."""
    from .alerts import alert_record

    if not findings:
        return []
    muted = set(
        CustomerUsageSettings.objects.filter(
            customer_id__in=list(findings), anomaly_alerts=False
        ).values_list("customer_id", flat=True)
    )
    customers = Customer.objects.in_bulk([c for c in findings if c not in muted])
    created = []
    for customer_id, found in findings.items():
        if customer_id not in customers:
            continue
        for kind in UsageAnomaly.Kind.values:
            of_kind = [f for f in found if f.kind == kind]
            if not of_kind:
                continue
            worst = max(of_kind, key=lambda f: abs(f.score))
            alert = alert_record(
                customer=customers[customer_id],
                rule=Alert.Rule.USAGE_ANOMALY,
                threshold=SPIKE_SCORE if kind == UsageAnomaly.Kind.SPIKE else SILENCE_SCORE,
                period=day.isoformat(),
                subject=kind,
                value=worst.requests,
                limit=int(worst.baseline.to_integral_value(rounding=ROUND_HALF_UP)),
            )
            if alert:
                created.append(alert)
    return created


# Reads (the staff pages and the dashboard include).


def anomaly_list(*, since: dt.date | None = None, kind: str = "", customer_id=None):
    """Findings, newest hour first, with their customer (one query a page)."""
    qs = UsageAnomaly.objects.select_related("customer")
    if since is not None:
        qs = qs.filter(hour__gte=dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC))
    if kind:
        qs = qs.filter(kind=kind)
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    return qs.order_by("-hour", "customer__name", "kind")


def recent_anomalies(*, days: int = 7, limit: int = 10, today: dt.date | None = None) -> dict:
    """The staff dashboard's flag: the latest findings of the last `days` days and their count."""
    from .services import utc_today

    since = (today or utc_today()) - dt.timedelta(days=days)
    found = anomaly_list(since=since)
    return {"rows": list(found[:limit]), "count": found.count(), "days": days}
