"""Unusual usage: the method on generated series with known anomalies (precision and recall),
the explanation text, and detection on real imported hourly rows with its alert."""

import datetime as dt
import math
import random
from decimal import Decimal

import pytest

from usage.anomalies import (
    BASELINE_WEEKS,
    SILENCE_MIN_BASELINE,
    Finding,
    anomalies_detect_day,
    assess,
    find_in_series,
)
from usage.models import Alert, IngestedDay, UsageAnomaly, UsageHourly

START = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)  # a Monday
WEEKS = 16  # 8 weeks of history, then 8 weeks judged
# Requests per hour at the busiest hour of a working day, per generated customer.
LEVELS = [3, 8, 20, 40, 80, 150, 300, 600, 1_200, 2_500, 5_000, 12_000]


def _profile(hour: dt.datetime) -> float:
    """Share of the peak rate: working days busier, office hours busiest, nights quiet."""
    working = hour.weekday() < 5
    if 8 <= hour.hour < 18:
        return 1.0 if working else 0.25
    if 6 <= hour.hour < 22:
        return 0.35 if working else 0.12
    return 0.04


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:  # normal approximation, fine for a test generator
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def generate(seed: int):
    """Hourly series of several customers with known spikes and silences.

    Each customer: a weekly profile at its level, a day-to-day factor (lognormal, 15 %), a
    growth of 1 % a week, Poisson noise. Anomalies, in history and judged weeks alike:
    spikes (1-3 hours, an extra burst of 3-12 times the expected rate, at least 60 requests:
    a runaway job) and silences (2-8 hours of nothing: an outage). Returns the series, and per
    customer the injected hours and the silenced hours whose expected rate is at least
    SILENCE_MIN_BASELINE (those the method can be asked to find)."""
    rng = random.Random(seed)
    series, injected, findable = {}, {}, {}
    hours = [START + dt.timedelta(hours=n) for n in range(WEEKS * 7 * 24)]
    for index, level in enumerate(LEVELS * 3):
        day_factor = {
            d: rng.lognormvariate(0, 0.15) for d in range(WEEKS * 7)
        }  # one factor per day
        expected = {
            h: level * _profile(h) * day_factor[(h - START).days] * (1.01 ** ((h - START).days / 7))
            for h in hours
        }
        counts = {h: _poisson(rng, expected[h]) for h in hours}
        marked, wanted = set(), set()
        for _ in range(rng.randint(6, 12)):
            at = rng.randrange(len(hours) - 10)
            if rng.random() < 0.5:
                for h in hours[at : at + rng.randint(1, 3)]:
                    counts[h] += max(60, round(expected[h] * rng.uniform(3, 12)))
                    marked.add(h)
                    wanted.add(h)
            else:
                for h in hours[at : at + rng.randint(2, 8)]:
                    counts[h] = 0
                    marked.add(h)
                    if expected[h] >= SILENCE_MIN_BASELINE:
                        wanted.add(h)
        series[index], injected[index], findable[index] = counts, marked, wanted
    return series, injected, findable


def evaluate(seed: int) -> dict:
    series, injected, findable = generate(seed)
    judged = [
        START + dt.timedelta(weeks=BASELINE_WEEKS, hours=n)
        for n in range((WEEKS - BASELINE_WEEKS) * 7 * 24)
    ]
    flagged = true = wanted = 0
    for index, counts in series.items():
        findings = find_in_series(counts, judged, first_use=START.date())
        hours = {f.hour for f in findings}
        flagged += len(hours)
        true += len(hours & injected[index])
        wanted_here = {h for h in findable[index] if h >= judged[0]}
        wanted += len(wanted_here)
        findable[index] = hours & wanted_here
    found = sum(len(v) for v in findable.values())
    return {
        "hours judged": len(judged) * len(series),
        "flagged": flagged,
        "true": true,
        "anomalous hours": wanted,
        "precision": true / flagged,
        "recall": found / wanted,
    }


def test_precision_and_recall_on_generated_series():
    results = [evaluate(seed) for seed in (11, 12, 13)]
    for seed, r in zip((11, 12, 13), results, strict=True):
        print(
            f"seed {seed}: {r['hours judged']:,} hours judged, {r['anomalous hours']} anomalous, "
            f"{r['flagged']} flagged, precision {r['precision']:.3f}, recall {r['recall']:.3f}"
        )
    for r in results:
        assert r["precision"] >= 0.9
        assert r["recall"] >= 0.9


def test_the_explanation_says_why():
    hour = dt.datetime(2026, 11, 17, 14, tzinfo=dt.UTC)  # a Tuesday
    finding = assess(hour=hour, requests=12_400, history=[800, 790, 820, 805, 770, 830, 815, 780])
    assert finding.kind == "spike"
    assert finding.explanation.startswith(
        "Tue 14:00: 12,400 requests, baseline 802.5 (median of the last 8 Tuesdays at 14:00), "
    )
    assert finding.explanation.endswith("typical spreads above")
    silent = assess(hour=hour, requests=0, history=[800, 790, 820, 805, 770])
    assert silent.kind == "silence" and silent.explanation.endswith("typical spreads below")
    assert "median of the last 5 Tuesdays" in silent.explanation


@pytest.mark.parametrize(
    ("requests", "history", "kind"),
    [
        (40, [0, 0, 0, 0, 0, 0, 0, 0], "spike"),  # from nothing to 40 an hour
        (15, [0, 0, 0, 0, 0, 0, 0, 0], None),  # too few to call a spike
        (0, [12, 10, 15, 9], None),  # a quiet hour that is quiet anyway
        (130, [100, 100, 100, 100, 100, 100, 100, 100], None),  # 30 % more is not unusual
        (900, [100, 100, 100], None),  # three weeks are too few to judge
        (900, [100, 100, 5_000, 100, 100], "spike"),  # one unusual week does not hide it
    ],
)
def test_edge_cases(requests, history, kind):
    hour = dt.datetime(2026, 11, 17, 3, tzinfo=dt.UTC)
    finding = assess(hour=hour, requests=requests, history=history)
    assert (finding.kind if finding else None) == kind


def test_a_finding_is_exact():
    finding = Finding(
        hour=dt.datetime(2026, 11, 16, 9, tzinfo=dt.UTC),
        kind="spike",
        requests=1,
        baseline=Decimal("0.00"),
        spread=Decimal("1.00"),
        score=Decimal("1.0"),
        weeks=1,
    )
    assert finding.explanation == (
        "Mon 09:00: 1 request, baseline 0 (median of last Monday at 09:00), "
        "1.0 typical spread above"
    )


DAY = dt.date(2026, 11, 24)  # a Tuesday


def _hourly(customer, day, hour, requests):
    UsageHourly.objects.create(
        customer=customer,
        hour=dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC),
        model_id="m",
        requests=requests,
    )


@pytest.fixture
def weeks_of_usage(customer, other_customer):
    """Eight earlier Tuesdays at about 800 requests at 14:00 for both customers; on DAY the
    first has a spike at 14:00 and the second is silent all day."""
    from usage.models import UsageDaily

    for n in range(BASELINE_WEEKS + 1):
        day = DAY - dt.timedelta(weeks=n)
        IngestedDay.objects.create(day=day, engine="duckdb", hourly_rows=1)
        for who in (customer, other_customer):
            if n == 0 and who == other_customer:
                continue
            requests = 12_400 if n == 0 else 800 + 10 * n
            _hourly(who, day, 14, requests)
            UsageDaily.objects.create(customer=who, day=day, model_id="m", requests=requests)


def test_detection_on_stored_rows_records_and_alerts_once(
    weeks_of_usage, customer, other_customer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        found = anomalies_detect_day(day=DAY, today=DAY + dt.timedelta(days=1))

    assert {(a.customer_id, a.kind) for a in found} == {
        (customer.pk, "spike"),
        (other_customer.pk, "silence"),
    }
    spike = UsageAnomaly.objects.get(customer=customer)
    assert spike.explanation.startswith(
        "Tue 14:00: 12,400 requests, baseline 845 (median of the last 8 Tuesdays at 14:00)"
    )
    alerts = Alert.objects.filter(rule=Alert.Rule.USAGE_ANOMALY).order_by("subject")
    assert [(a.subject, a.period, a.value, a.limit) for a in alerts] == [
        ("silence", "2026-11-24", 0, 845),
        ("spike", "2026-11-24", 12_400, 845),
    ]
    again = anomalies_detect_day(day=DAY, today=DAY + dt.timedelta(days=1))
    assert len(again) == 2 and UsageAnomaly.objects.count() == 2
    assert Alert.objects.filter(rule=Alert.Rule.USAGE_ANOMALY).count() == 2


def test_old_days_and_muted_customers_raise_no_alert(weeks_of_usage, customer):
    from usage.services import usage_settings_update

    usage_settings_update(customer=customer, anomaly_alerts=False)
    anomalies_detect_day(day=DAY, today=DAY + dt.timedelta(days=1))
    assert list(Alert.objects.values_list("subject", flat=True)) == ["silence"]
    Alert.objects.all().delete()
    anomalies_detect_day(day=DAY, today=DAY + dt.timedelta(days=30))
    assert not Alert.objects.exists() and UsageAnomaly.objects.count() == 2


def test_days_without_hourly_usage_are_not_read_as_silent(weeks_of_usage, customer):
    # Days imported before hourly usage existed: not zeros in the baseline, not judged.
    IngestedDay.objects.exclude(day=DAY).update(hourly_rows=None)
    assert anomalies_detect_day(day=DAY, today=DAY) == []
    IngestedDay.objects.filter(day=DAY).update(hourly_rows=None)
    assert anomalies_detect_day(day=DAY, today=DAY) == []


def test_pages_say_typical_spread_not_statistics_jargon(
    weeks_of_usage, customer, staff_client, monkeypatch
):
    """The pages speak plainly: "typical spread" (the figure kept), never "MAD"."""
    from django.urls import reverse

    anomalies_detect_day(day=DAY, today=DAY + dt.timedelta(days=1))
    spike = Alert.objects.get(rule=Alert.Rule.USAGE_ANOMALY, subject="spike")
    alerts = staff_client.get(reverse("staff:usage_alerts")).content.decode()
    assert f"{spike.threshold} typical spreads</td>" in alerts
    monkeypatch.setattr("usage.views_staff.utc_today", lambda: DAY + dt.timedelta(days=1))
    page = staff_client.get(reverse("staff:usage_anomalies")).content.decode()
    assert "6 or more typical spreads above their median" in page
    assert "Typical spreads away" in page and "typical spreads above" in page  # the explanation
    for body in (alerts, page):
        assert "MAD" not in body
