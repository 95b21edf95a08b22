"""The usage pages' default range: this month so far, and at least the last 30 days, so that on
the 1st of a month (the month so far is today alone, nothing billed yet) the pages still show
the last month's usage."""

import datetime as dt

import pytest

from usage import forms


@pytest.mark.parametrize(
    ("today", "start"),
    [
        (dt.date(2026, 12, 1), dt.date(2026, 11, 2)),  # the 1st: the last 30 days
        (dt.date(2026, 12, 15), dt.date(2026, 11, 16)),
        (dt.date(2026, 12, 31), dt.date(2026, 12, 1)),  # a 31-day month: all of it so far
        (dt.date(2027, 3, 1), dt.date(2027, 1, 31)),
    ],
)
def test_the_default_range(monkeypatch, today, start):
    monkeypatch.setattr(forms, "utc_today", lambda: today)
    assert forms.DateRangeForm().range() == (start, today)
    assert forms.StaffExportForm().range() == (start, today)
    assert (today - start).days + 1 >= forms.DEFAULT_VIEW_DAYS
