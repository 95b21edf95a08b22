"""The customer's usage charts end on today: today, not over yet, is a partial point ("today so
far", core.charts.with_partial_point), never drawn as a full day."""

import datetime as dt
import json

import pytest
from django.urls import reverse

from core.charts import PARTIAL_SUFFIX
from usage.models import UsageDaily
from usage.services import utc_today

pytestmark = pytest.mark.django_db


def _figure(html: str, chart_id: str) -> dict:
    marker = f'<script id="{chart_id}-data" type="application/json">'
    start = html.index(marker) + len(marker)
    return json.loads(html[start : html.index("</script>", start)])


def test_today_is_a_partial_point_on_the_customer_usage_charts(aws, customer_client, customer):
    today = utc_today()
    yesterday = today - dt.timedelta(days=1)
    for day, requests in ((yesterday, 40), (today, 3)):
        UsageDaily.objects.create(customer=customer, day=day, model_id="test.model-a",
                                  requests=requests, input_tokens=requests * 100)  # fmt: skip
    url = reverse("customer:usage_overview") + f"?start={yesterday}&end={today}"
    html = customer_client.get(url).content.decode()

    requests = _figure(html, "requests-per-day")
    full, partial = requests["data"]
    assert full["x"] == [yesterday.isoformat()] and full["y"] == [40]  # today is not a full day
    assert partial["meta"] == {"partial": True}
    assert partial["x"] == [yesterday.isoformat(), today.isoformat()]
    assert partial["y"] == [40, 3]
    assert "today so far" in partial["hovertemplate"] and "%{y:,}" in partial["hovertemplate"]

    tokens = _figure(html, "daily-tokens-by-model")
    bars = [t for t in tokens["data"] if t["type"] == "bar"]
    assert all(today.isoformat() not in t["x"] for t in bars)
    (marker,) = [t for t in tokens["data"] if t.get("meta") == {"partial": True}]
    assert marker["y"][-1] == 300
    # the data tables say it too, in the pages' date format
    assert f'<th scope="row">{today.day} {today:%b %Y}{PARTIAL_SUFFIX}</th>' in html


def test_a_range_that_ended_yesterday_has_no_partial_point(aws, customer_client, customer):
    yesterday = utc_today() - dt.timedelta(days=1)
    UsageDaily.objects.create(customer=customer, day=yesterday, model_id="test.model-a",
                              requests=5, input_tokens=500)  # fmt: skip
    url = reverse("customer:usage_overview") + f"?start={yesterday}&end={yesterday}"
    html = customer_client.get(url).content.decode()
    requests = _figure(html, "requests-per-day")
    assert [t.get("meta") for t in requests["data"]] == [None]
    assert requests["data"][0]["y"] == [5]
