"""Model display names (hover: the id), today's partial day on the staff trend, and the date
format set once."""

import datetime as dt
import json
import re

from django.template import Context, Template
from django.urls import reverse

from core import charts
from portal.dashboard.selectors import trend_with_today
from proxy import contract
from usage import counters
from usage.services import utc_today


def _render(text, **context):
    return Template("{% load display_tags %}" + text).render(Context(context))


def test_model_name_shows_the_catalog_name_with_the_id_on_hover(prices):
    html = _render("{{ m|model_name }}", m="test.model-a")
    assert html == '<span class="model" title="test.model-a">Model A</span>'


def test_unknown_model_shows_its_id_and_markup_is_escaped(db):
    html = _render("{{ m|model_name }}", m='<b>"x"</b>')
    assert "<b>" not in html and "&lt;b&gt;" in html
    assert _render("{{ m|model_name }}", m=None) == ""


def test_alias_and_sandbox_have_names(db):
    from billing.catalog import catalog

    sandbox = next(m for m in catalog() if m.model_id == "sandbox.echo-v1")
    assert f">{sandbox.name}<" in _render("{{ m|model_name }}", m="sandbox.echo-v1")


def test_staff_pages_show_model_names(staff_client, customer, prices, aws):
    customer.allowed_models = ["test.model-a"]
    customer.save()
    html = staff_client.get(reverse("staff:customer_detail", args=[customer.pk])).content.decode()
    assert '<span class="model" title="test.model-a">Model A</span>' in html
    dynamodb, today = aws.client("dynamodb"), utc_today()
    item = {
        "pk": {"S": counters.customer_pk(customer.pk)},
        "sk": {"S": contract.day_sk(today, "test.model-b")},
        "requests": {"N": "3"},
        "input_tokens": {"N": "12000"},
    }
    dynamodb.put_item(TableName=counters.counters_table_name(), Item=item)
    url = reverse("staff:usage_customer", args=[customer.pk])
    html = staff_client.get(url).content.decode()
    assert '<span class="model" title="test.model-b">Model B</span>' in html
    assert "12,000" in html


def test_dates_read_the_same_everywhere():
    moment = dt.datetime(2026, 11, 25, 14, 5, tzinfo=dt.UTC)
    html = Template('{{ d|date }} · {{ m|date:"DATETIME_FORMAT" }}').render(
        Context({"d": moment.date(), "m": moment})
    )
    assert html == "25 Nov 2026 · 25 Nov 2026 14:05 UTC"


def _trend():
    return charts.lines(
        "usage-trend",
        "Billed usage per day",
        x_labels=["2026-11-24", "2026-11-25"],
        series={"Tokens (input + output)": [100, 200], "Requests": [1, 2]},
        secondary=("Requests",),
    )


def test_today_is_a_marked_partial_point_not_a_drop():
    today = dt.date(2026, 11, 26)
    chart = trend_with_today(_trend(), live={"error": "", "tokens": 40, "requests": 3}, today=today)
    full = [t for t in chart["figure"]["data"] if not t.get("meta", {}).get("partial")]
    partial = [t for t in chart["figure"]["data"] if t.get("meta", {}).get("partial")]
    assert [t["x"] for t in full] == [["2026-11-24", "2026-11-25"]] * 2  # billed days untouched
    assert [t["name"] for t in partial] == [
        "Tokens (input + output) (today so far)",
        "Requests (today so far)",
    ]
    tokens, requests = partial
    assert tokens["x"] == ["2026-11-25", "2026-11-26"] and tokens["y"] == [200, 40]
    assert tokens["line"]["dash"] == "dot" and tokens["opacity"] < 1
    assert "today so far" in tokens["hovertemplate"] and not tokens["showlegend"]
    assert requests["yaxis"] == "y2" and requests["y"] == [2, 3]
    assert chart["rows"][-1] == ["2026-11-26 (today so far)", 40, 3]


def test_no_partial_point_without_live_counters():
    chart = trend_with_today(_trend(), live={"error": "unavailable"}, today=dt.date(2026, 11, 26))
    assert chart == _trend()


def test_overview_page_carries_the_partial_point(staff_client, aws, customer):
    dynamodb, today = aws.client("dynamodb"), utc_today()
    item = {
        "pk": {"S": counters.customer_pk(customer.pk)},
        "sk": {"S": counters.day_sk(today)},
        "requests": {"N": "5"},
        "input_tokens": {"N": "700"},
    }
    dynamodb.put_item(TableName=counters.counters_table_name(), Item=item)
    html = staff_client.get(reverse("staff:dashboard_overview")).content.decode()
    raw = re.search(r'<script id="usage-trend-data" type="application/json">(.*?)</script>', html)
    figure = json.loads(raw.group(1))
    partial = [t for t in figure["data"] if t.get("meta", {}).get("partial")]
    assert partial[0]["x"][-1] == today.isoformat() and partial[0]["y"][-1] == 700
    assert "(today so far)" in html


def test_model_charts_use_display_names(prices):
    from portal.dashboard.selectors import model_labels

    assert model_labels(["test.model-a", "unknown.x", "Other"]) == {
        "test.model-a": "Model A",
        "unknown.x": "unknown.x",
        "Other": "Other",
    }
