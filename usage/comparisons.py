"""This period against the previous one: "Requests 12,345 (+18 % vs previous week)".

The previous period of a range is the one of the same kind just before it: a day the day
before; days of one ISO week (from its Monday) the same weekdays a week earlier; a month from
its 1st the previous month, whole when the range is a whole month, else its first days up to
the same day of the month (its last day when shorter: March 1-30 compares with February 1-28);
any other range the same number of days just before. Billed usage only: a range reaching today
is compared up to yesterday, the last day the nightly import can have loaded.
"""

import calendar
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import F, Q, Sum

from .billed_cache import until_next_ingest
from .models import UsageDaily

METRICS = (("requests", "Requests"), ("tokens", "Tokens"))
KINDS = ("day", "week", "month")


def _last_day(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def period_kind(start: dt.date, end: dt.date) -> str:
    """ "day", "week" (from a Monday, within its ISO week), "month" (from a 1st, within its
    month) or "" (any other range)."""
    if start == end:
        return "day"
    if start.weekday() == 0 and start.isocalendar()[:2] == end.isocalendar()[:2]:
        return "week"
    if start.day == 1 and (start.year, start.month) == (end.year, end.month):
        return "month"
    return ""


def previous_period(start: dt.date, end: dt.date, kind: str = "") -> tuple[str, dt.date, dt.date]:
    """(label, first day, last day) of the period to compare [start, end] with; `kind` (day,
    week, month) when known, else read from the dates (a week to date of one day is a week)."""
    kind = kind or period_kind(start, end)
    if kind == "day":
        one = dt.timedelta(days=1)
        return "previous day", start - one, end - one
    if kind == "week":
        week = dt.timedelta(weeks=1)
        whole = (end - start).days == 6
        return (
            ("previous week" if whole else "same days of the previous week"),
            start - week,
            end - week,
        )
    if kind == "month":
        last = start - dt.timedelta(days=1)
        first = last.replace(day=1)
        if end == _last_day(end):
            return "previous month", first, last
        return "same days of the previous month", first, min(last, first + (end - start))
    days = (end - start).days + 1
    return f"previous {days} days", start - dt.timedelta(days=days), start - dt.timedelta(days=1)


def change_text(current: int, previous: int) -> str:
    """ "+18 %", "-5 %", "no change", "new" (nothing before) or "" (nothing either time); whole
    percents rounded half up, from integers."""
    if not previous:
        return "new" if current else ""
    percent = (Decimal(100 * (current - previous)) / Decimal(previous)).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    if percent == 0:
        return "no change"
    return f"{'+' if percent > 0 else '-'}{abs(percent):,} %"


def _sums(name: str, start: dt.date, end: dt.date) -> dict:
    within = Q(day__gte=start, day__lte=end)
    return {
        f"{name}_requests": Sum("requests", filter=within),
        f"{name}_tokens": Sum(F("input_tokens") + F("output_tokens"), filter=within),
    }


def compare_periods(*, customer_id=None, periods: dict) -> dict:
    """{name: comparison} for periods {name: (start, end)} (each end a finished day), in one
    query. A comparison: label, the four dates, and per metric current, previous and change."""
    bounds = {
        name: (s, e, *previous_period(s, e, name if name in KINDS else ""))
        for name, (s, e) in periods.items()
    }
    if not bounds:
        return {}
    aggregates = {}
    for name, (start, end, _, prev_start, prev_end) in bounds.items():
        aggregates |= _sums(f"{name}_current", start, end)
        aggregates |= _sums(f"{name}_previous", prev_start, prev_end)
    qs = UsageDaily.objects.filter(
        day__gte=min(b[3] for b in bounds.values()), day__lte=max(b[1] for b in bounds.values())
    )
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    totals = qs.aggregate(**aggregates)
    result = {}
    for name, (start, end, label, prev_start, prev_end) in bounds.items():
        metrics = []
        for key, title in METRICS:
            current = totals[f"{name}_current_{key}"] or 0
            previous = totals[f"{name}_previous_{key}"] or 0
            metrics.append(
                {
                    "key": key,
                    "name": title,
                    "current": current,
                    "previous": previous,
                    "change": change_text(current, previous),
                }
            )
        result[name] = {
            "label": label,
            "start": start,
            "end": end,
            "previous_start": prev_start,
            "previous_end": prev_end,
            "metrics": metrics,
        }
    return result


def range_comparison(*, customer_id=None, start: dt.date, end: dt.date, today: dt.date) -> dict:
    """The usage pages' range against its previous period, or {} when the range holds no
    finished day."""
    end = min(end, today - dt.timedelta(days=1))
    if end < start:
        return {}
    try:
        return compare_periods(customer_id=customer_id, periods={"range": (start, end)})["range"]
    except OverflowError:  # a range in January of year 1 has no previous period
        return {}


def to_date_periods(today: dt.date) -> dict:
    """Yesterday, this week and this month up to yesterday (the last finished day); on a Monday
    "this week" is the whole previous week, on the 1st "this month" the whole previous month."""
    anchor = today - dt.timedelta(days=1)
    return {
        "day": (anchor, anchor),
        "week": (anchor - dt.timedelta(days=anchor.weekday()), anchor),
        "month": (anchor.replace(day=1), anchor),
    }


def quick_ranges(today: dt.date) -> list[dict]:
    """Links of the usage pages: yesterday, this week and this month (to yesterday)."""
    anchor = today - dt.timedelta(days=1)
    titles = {
        "day": "Yesterday",
        # On a Monday the week to yesterday is last week; on the 1st, the month is last month.
        "week": "This week" if today.weekday() else "Last week",
        "month": "This month" if anchor.month == today.month else "Last month",
    }
    return [
        {"title": titles[name], "start": start, "end": end}
        for name, (start, end) in to_date_periods(today).items()
    ]


def staff_comparisons(*, today: dt.date) -> dict:
    """Yesterday, this week and this month against the period before, over every customer
    (the staff usage dashboard): an aggregate over about two months of billed rows (0.5 s at
    10,000 customers), so it is kept until the next import changes those rows, and the
    import's cache warm-up computes it ahead of the first staff member."""
    return until_next_ingest(
        "staff-comparisons", (today,), lambda: compare_periods(periods=to_date_periods(today))
    )
