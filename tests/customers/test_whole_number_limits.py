"""Whole-number limits typed as people write them: "1,000" and "1 000" are 1000; anything
else that is not plain digits is refused with a message saying how to type it."""

import pytest
from django.urls import reverse

from customers.forms import LimitsForm, TokenLimitsForm


@pytest.mark.parametrize(
    ("typed", "number"),
    [("1,000", 1000), ("1 000", 1000), ("2,000,000", 2_000_000), ("2\u202f000\u202f000", 2_000_000),
     ("2\u00a0000", 2000), ("2000000", 2_000_000), (" 12 ", 12)],
)  # fmt: skip
def test_group_separators_are_taken_out(db, typed, number):
    form = LimitsForm({"daily_request_limit": typed, "monthly_token_quota": typed})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["daily_request_limit"] == number
    assert form.cleaned_data["monthly_token_quota"] == number


@pytest.mark.parametrize(
    "typed", ["1.000.000x", "1.000", "1,00", "1,000 000", "1_000", "١٢", "1e6", "12abc", ",100"]
)
def test_anything_else_is_refused_with_a_message(db, typed):
    form = TokenLimitsForm({"daily_request_limit": typed})
    assert not form.is_valid()
    (message,) = form.errors["daily_request_limit"]
    assert message == (
        "Token's daily request limit must be a whole number, such as 2000000 or 2,000,000 "
        "(commas or spaces between groups of three digits), or empty for no limit."
    )


def test_empty_and_none_still_clear_and_bounds_still_apply(db):
    form = LimitsForm({"daily_request_limit": "none", "rpm_limit": "", "tpm_limit": "-5"})
    assert not form.is_valid()
    assert form.cleaned_data["daily_request_limit"] is None
    assert form.cleaned_data["rpm_limit"] is None
    assert "must be a positive number" in form.errors["tpm_limit"][0]


def test_the_limits_page_takes_1_000_and_shows_it_back(staff_client, customer, aws):
    url = reverse("staff:customer_limits", args=[customer.pk])
    response = staff_client.post(url, {"daily_request_limit": "1,000", "rpm_limit": "2 000"})
    assert response.status_code == 302, response.content.decode()[:2000]
    customer.refresh_from_db()
    assert (customer.daily_request_limit, customer.rpm_limit) == (1000, 2000)
    html = staff_client.get(reverse("staff:customer_detail", args=[customer.pk])).content.decode()
    assert "1,000" in html and "2,000" in html
    response = staff_client.post(url, {"daily_request_limit": "1.000.000x"})
    assert response.status_code == 200
    assert "must be a whole number, such as 2000000 or 2,000,000" in response.content.decode()
