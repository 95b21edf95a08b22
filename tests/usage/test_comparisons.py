"""This period against the previous one: periods at month, year and leap-day boundaries, the
change text, the usage pages and the summary emails."""

import datetime as dt

import pytest
from django.core import mail
from django.urls import reverse

from usage.comparisons import (
    change_text,
    compare_periods,
    previous_period,
    range_comparison,
    to_date_periods,
)
from usage.models import CustomerUsageSettings
from usage.services import usage_day_replace
from usage.summaries import summaries_send

D = dt.date


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (D(2026, 3, 1), D(2026, 3, 1), ("previous day", D(2026, 2, 28), D(2026, 2, 28))),
        (D(2026, 1, 1), D(2026, 1, 1), ("previous day", D(2025, 12, 31), D(2025, 12, 31))),
        # whole months, whatever their lengths
        (D(2026, 3, 1), D(2026, 3, 31), ("previous month", D(2026, 2, 1), D(2026, 2, 28))),
        (D(2024, 3, 1), D(2024, 3, 31), ("previous month", D(2024, 2, 1), D(2024, 2, 29))),
        (D(2026, 2, 1), D(2026, 2, 28), ("previous month", D(2026, 1, 1), D(2026, 1, 31))),
        (D(2026, 1, 1), D(2026, 1, 31), ("previous month", D(2025, 12, 1), D(2025, 12, 31))),
        # month to date: the same days, cut at the end of a shorter previous month
        (
            D(2026, 3, 1),
            D(2026, 3, 15),
            ("same days of the previous month", D(2026, 2, 1), D(2026, 2, 15)),
        ),
        (
            D(2026, 3, 1),
            D(2026, 3, 30),
            ("same days of the previous month", D(2026, 2, 1), D(2026, 2, 28)),
        ),
        (
            D(2026, 5, 1),
            D(2026, 5, 30),
            ("same days of the previous month", D(2026, 4, 1), D(2026, 4, 30)),
        ),
        # ISO weeks, across a month and a year end
        (D(2026, 11, 23), D(2026, 11, 29), ("previous week", D(2026, 11, 16), D(2026, 11, 22))),
        (
            D(2026, 12, 28),
            D(2026, 12, 30),
            ("same days of the previous week", D(2026, 12, 21), D(2026, 12, 23)),
        ),
        (D(2027, 1, 4), D(2027, 1, 10), ("previous week", D(2026, 12, 28), D(2027, 1, 3))),
        # any other range: as many days just before
        (D(2026, 2, 20), D(2026, 3, 5), ("previous 14 days", D(2026, 2, 6), D(2026, 2, 19))),
    ],
)
def test_previous_period(start, end, expected):
    assert previous_period(start, end) == expected


def test_to_date_periods_at_the_start_of_a_month_and_a_week():
    # On Monday 1 March 2027 the last finished day is Sunday 28 February.
    periods = to_date_periods(D(2027, 3, 1))
    assert periods == {
        "day": (D(2027, 2, 28), D(2027, 2, 28)),
        "week": (D(2027, 2, 22), D(2027, 2, 28)),
        "month": (D(2027, 2, 1), D(2027, 2, 28)),
    }
    # On 2 December the month so far is one day, compared with 1 November (not 30 November),
    # and on a Tuesday the week so far is Monday, compared with the Monday before.
    assert previous_period(D(2026, 12, 1), D(2026, 12, 1), "month")[1:] == (
        D(2026, 11, 1),
        D(2026, 11, 1),
    )
    assert previous_period(D(2026, 11, 23), D(2026, 11, 23), "week")[1:] == (
        D(2026, 11, 16),
        D(2026, 11, 16),
    )


@pytest.mark.parametrize(
    ("current", "previous", "text"),
    [
        (12_345, 10_462, "+18 %"),
        (95, 100, "-5 %"),
        (100, 100, "no change"),
        (1_005, 1_000, "+1 %"),  # 0.5 % rounds half up
        (1_004, 1_000, "no change"),
        (5, 0, "new"),
        (0, 0, ""),
        (0, 7, "-100 %"),
        (2_500_000, 1_000, "+249,900 %"),
    ],
)
def test_change_text(current, previous, text):
    assert change_text(current, previous) == text


def _day(customer, day, requests, tokens=0):
    usage_day_replace(
        day=day,
        engine="duckdb",
        rows=[(str(customer.pk), "m", "", "", "", requests, tokens, 0, 0, 0)],
    )


def test_compare_periods_sums_each_side_in_one_query(
    customer, other_customer, django_assert_num_queries
):
    _day(customer, D(2026, 2, 28), 100, 1_000)
    _day(customer, D(2026, 3, 31), 118, 1_500)
    _day(customer, D(2026, 3, 30), 0)
    usage_day_replace(
        day=D(2026, 3, 29),
        engine="duckdb",
        rows=[(str(other_customer.pk), "m", "", "", "", 999, 9, 0, 0, 0)],
    )

    with django_assert_num_queries(1):
        result = compare_periods(
            customer_id=customer.pk, periods={"month": (D(2026, 3, 1), D(2026, 3, 31))}
        )

    month = result["month"]
    assert (month["label"], month["previous_start"], month["previous_end"]) == (
        "previous month",
        D(2026, 2, 1),
        D(2026, 2, 28),
    )
    requests, tokens = month["metrics"]
    assert (requests["current"], requests["previous"], requests["change"]) == (118, 100, "+18 %")
    assert (tokens["current"], tokens["previous"], tokens["change"]) == (1_500, 1_000, "+50 %")


def test_a_range_reaching_today_is_compared_up_to_yesterday(customer):
    today = D(2026, 3, 16)
    comparison = range_comparison(
        customer_id=customer.pk, start=D(2026, 3, 1), end=D(2026, 3, 31), today=today
    )
    assert (comparison["end"], comparison["previous_end"]) == (D(2026, 3, 15), D(2026, 2, 15))
    assert range_comparison(customer_id=customer.pk, start=today, end=today, today=today) == {}


def test_usage_pages_show_the_comparison(customer_client, staff_user, dynamodb, customer):
    from django.test import Client

    _day(customer, D(2026, 9, 20), 1_000)
    _day(customer, D(2026, 10, 20), 1_180)
    query = {"start": "2026-10-01", "end": "2026-10-31"}

    body = customer_client.get(reverse("customer:usage_overview"), query).content.decode()
    assert "+18 % vs previous month" in body and "1,180" in body

    staff_client = Client()
    staff_client.force_login(staff_user)
    url = reverse("staff:usage_customer", args=[customer.pk])
    body = staff_client.get(url, query).content.decode()
    assert "+18 % vs previous month" in body


def test_the_weekly_summary_compares_with_the_week_before(customer):
    CustomerUsageSettings.objects.create(customer=customer, summary_frequency="weekly")
    _day(customer, D(2026, 11, 11), 10_462, 2_000)
    _day(customer, D(2026, 11, 18), 12_345, 1_000)

    assert summaries_send(frequency="weekly", today=D(2026, 11, 23)) == 1

    message = mail.outbox[0]
    assert "Requests 12,345 (+18 % vs previous week: 10,462)" in message.body
    assert "Tokens 1,000 (-50 % vs previous week: 2,000)" in message.body
    html = message.alternatives[0][0]
    assert "+18 % vs previous week" in html and "12,345" in html


def test_a_range_at_the_start_of_the_calendar_has_no_comparison(customer):
    assert (
        range_comparison(
            customer_id=customer.pk, start=D(1, 1, 1), end=D(1, 1, 31), today=D(2026, 11, 26)
        )
        == {}
    )
