"""The overview's billed figures are cached until the next ingest (one cheap query on a hit)."""

import datetime as dt

import pytest

from portal.dashboard import selectors
from usage.models import IngestedDay
from usage.services import utc_today

pytestmark = pytest.mark.django_db


def test_overview_is_cached_until_a_day_is_ingested(
    many_customers, make_usage, prices, django_assert_num_queries
):
    today = utc_today()
    customers = many_customers(2)
    make_usage(customers, days=2)
    first = selectors.overview(today=today)
    with django_assert_num_queries(1):
        assert selectors.overview(today=today) == first
    make_usage(many_customers(1), days=1)  # not visible until an ingest says so
    assert selectors.overview(today=today) == first
    IngestedDay.objects.create(day=today - dt.timedelta(days=1), engine="test")
    again = selectors.overview(today=today)
    assert again["month"]["requests"] > first["month"]["requests"] or today.day == 1
    assert again["top_rows"] != first["top_rows"]
