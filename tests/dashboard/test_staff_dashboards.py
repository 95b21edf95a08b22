"""Staff dashboard pages: content, charts with their tables, and bounded query counts."""

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from customers.models import SyncOutbox
from usage.models import Alert

pytestmark = pytest.mark.django_db

PAGES = [
    "staff:dashboard_overview",
    "staff:dashboard_models",
    "staff:dashboard_heatmap",
    "staff:dashboard_cost",
]


def _queries(django_assert_max_num_queries, staff_client, url, limit):
    with django_assert_max_num_queries(limit) as ctx:
        response = staff_client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries), response


@pytest.mark.parametrize("name", PAGES)
def test_query_count_does_not_grow_with_data(
    name, aws, staff_client, many_customers, make_usage, prices, django_assert_max_num_queries
):
    url = reverse(name)
    small = many_customers(2)
    make_usage(small, days=2)
    # On an empty cache a default view queues the dashboards' warming task, which runs in the
    # request here (tasks are eager in tests): every default view's aggregates, a fixed number.
    n_small, _ = _queries(django_assert_max_num_queries, staff_client, url, 40)
    from django.core.cache import cache

    cache.clear()
    large = many_customers(40)
    make_usage(large, days=10, extra_apps=25)
    for customer in large[:3]:
        SyncOutbox.objects.create(customer=customer, kind="customer", version=1, payload={},
                                  attempts=2, last_error="boom")  # fmt: skip
        Alert.objects.create(customer=customer, rule="monthly_tokens", threshold=80,
                             period="2026-11", value=900, limit=1000)  # fmt: skip
    n_large, response = _queries(django_assert_max_num_queries, staff_client, url, n_small)
    print(f"{name}: {n_small} queries small, {n_large} large")
    assert n_large == n_small
    assert response.content.count(b'type="application/json"') >= 1


def _figure(response, chart_id):
    html = response.content.decode()
    marker = f'<script id="{chart_id}-data" type="application/json">'
    start = html.index(marker) + len(marker)
    return json.loads(html[start : html.index("</script>", start)])


def test_overview_shows_totals_trend_top_customers_syncs_and_alerts(
    aws, staff_client, many_customers, make_usage, prices
):
    customers = many_customers(3)
    make_usage(customers, days=2)
    SyncOutbox.objects.create(customer=customers[1], kind="customer", version=1, payload={},
                              attempts=1, last_error="throttled")  # fmt: skip
    Alert.objects.create(customer=customers[0], rule="monthly_tokens", threshold=80,
                         period="2026-11", value=900, limit=1000)  # fmt: skip
    response = staff_client.get(reverse("staff:dashboard_overview"))
    html = response.content.decode()
    assert "Tokens this month (billed)" in html
    assert "Customer 001" in html and "failing" in html
    assert "Monthly token quota" in html
    trend = _figure(response, "usage-trend")
    assert trend["data"][0]["type"] == "scatter" and len(trend["data"][0]["x"]) == 30
    top = _figure(response, "top-customers")
    assert len(top["data"][0]["y"]) == 3
    assert "vendor/plotly/plotly.min.js" in html and "portal/charts.js" in html


def test_models_page_stacks_tokens_by_application_and_model(
    staff_client, many_customers, make_usage
):
    make_usage(many_customers(1), days=1)
    response = staff_client.get(reverse("staff:dashboard_models"))
    stacked = _figure(response, "tokens-by-app-model")
    assert stacked["layout"]["barmode"] == "stack"
    assert {t["name"] for t in stacked["data"]} == {"test.model-a", "test.model-b",
                                                     "us.test.model-a"}  # fmt: skip
    assert set(stacked["data"][0]["x"]) == {"chatbot", "search", "(none)"}
    share = _figure(response, "share-by-model")
    assert share["data"][0]["type"] == "pie"
    # model-a: 1000 in + (500+1000+1500) out over the 3 apps = 6000 tokens
    values = dict(zip(share["data"][0]["labels"], share["data"][0]["values"], strict=True))
    assert values["test.model-a"] == 6000
    assert "Data table" in response.content.decode()


def test_many_applications_are_folded_into_other(staff_client, many_customers, make_usage):
    make_usage(many_customers(1), days=1, extra_apps=30)
    response = staff_client.get(reverse("staff:dashboard_models"))
    stacked = _figure(response, "tokens-by-app-model")
    assert len(stacked["data"][0]["x"]) == 16
    assert stacked["data"][0]["x"][-1] == "Other"


def test_heatmap_is_application_by_customer(staff_client, many_customers, make_usage):
    make_usage(many_customers(2), days=1)
    response = staff_client.get(reverse("staff:dashboard_heatmap"))
    figure = _figure(response, "app-customer-heatmap")
    assert figure["data"][0]["type"] == "heatmap"
    assert set(figure["data"][0]["x"]) == {"Customer 000", "Customer 001"}
    assert len(figure["data"][0]["z"]) == 3


def test_cost_by_cost_center_uses_the_price_book(staff_client, many_customers, make_usage, prices):
    make_usage(many_customers(1), days=1)
    response = staff_client.get(reverse("staff:dashboard_cost") + "?by=cost_center")
    cost = response.context["cost"]
    by_key = {r["key"]: r["cost"] for r in cost["rows"]}
    # "sales" = app "chatbot": model-a 1000 in/500 out, model-b 2000/500, us.model-a 3000/500
    # 1*0.003 + 0.5*0.015 + 2*0.00025 + 0.5*0.00125 + 3*0.003 + 0.5*0.015 = 0.028125 -> 0.03
    assert str(by_key["sales"]) == "0.03"
    assert cost["unpriced_tokens"] == 0
    figure = _figure(response, "cost-by-tag")
    assert all(isinstance(v, str) for v in figure["data"][0]["x"])  # Decimal, never float


def test_bad_filters_never_500(staff_client):
    queries = [
        "?start=nope&end=2026-01-01",
        "?start=2026-02-01&end=2026-01-01",
        "?customer=not-a-uuid&start=2026-01-01&end=2026-01-02",
        "?by=drop_table",
    ]
    for query in queries:
        for name in PAGES[1:]:
            assert staff_client.get(reverse(name) + query).status_code == 200


def test_heatmap_of_one_customer_query_count_does_not_grow(
    staff_client, customer, django_assert_max_num_queries
):
    """The application x user heatmap: the same queries for 2 users or 600 rows."""
    from usage.models import UsageUserDaily
    from usage.services import utc_today

    today = utc_today()
    url = reverse("staff:dashboard_heatmap")
    query = {"customer": customer.pk, "start": today - dt.timedelta(days=10), "end": today}

    def rows(users, apps, days):
        UsageUserDaily.objects.bulk_create(
            UsageUserDaily(
                customer=customer,
                day=today - dt.timedelta(days=d),
                application_id=f"app-{a}",
                user_id=f"user-{u}",
                model_id="m",
                requests=1,
                input_tokens=10 * (u + 1),
                output_tokens=a,
            )
            for u in range(users)
            for a in range(apps)
            for d in range(days)
        )

    rows(users=2, apps=1, days=1)
    with django_assert_max_num_queries(10) as small:
        response = staff_client.get(url, query)
    assert _figure(response, "app-user-heatmap")["data"][0]["type"] == "heatmap"
    UsageUserDaily.objects.all().delete()
    rows(users=30, apps=25, days=4)
    with django_assert_max_num_queries(len(small.captured_queries)) as large:
        response = staff_client.get(url, query)
    print(f"heatmap of one customer: {len(small.captured_queries)} queries small, {len(large)}")
    heatmap = _figure(response, "app-user-heatmap")["data"][0]
    # 20 biggest applications x 25 biggest users, the rest summed as "Other"
    assert len(heatmap["y"]) == 21 and heatmap["y"][-1] == "Other"
    assert len(heatmap["x"]) == 26 and heatmap["x"][-1] == "Other"


@pytest.mark.parametrize(
    ("by", "key", "label"),
    [("environment", "production", "Environment"), ("application_id", "chatbot", "Application")],
)
def test_cost_by_environment_and_application(
    by, key, label, staff_client, many_customers, make_usage, prices
):
    make_usage(many_customers(1), days=1)
    response = staff_client.get(reverse("staff:dashboard_cost"), {"by": by})
    assert response.context["by"] == by
    rows = {r["key"]: r["cost"] for r in response.context["cost"]["rows"]}
    assert key in rows and all(isinstance(v, Decimal) for v in rows.values())
    # every tag value together is the whole day's list price, whichever tag splits it
    whole = staff_client.get(reverse("staff:dashboard_cost"), {"by": "cost_center"})
    total = sum(r["cost"] for r in whole.context["cost"]["rows"])
    assert abs(sum(rows.values()) - total) <= Decimal("0.01") * len(rows)
    assert label in response.content.decode()


@pytest.mark.parametrize("name", PAGES)
def test_every_chart_has_its_data_table_beside_it(
    name, aws, staff_client, many_customers, make_usage, prices
):
    make_usage(many_customers(2), days=2)
    html = staff_client.get(reverse(name)).content.decode()
    figures = re.findall(r'<figure class="chart".*?</figure>', html, re.DOTALL)
    assert figures, name
    for figure in figures:
        chart_id = re.search(r'data-chart="([^"]+)"', figure).group(1)
        # The name for screen readers goes on plotly's SVG once drawn (charts.js), not on the
        # container: that one also holds plotly's toolbar buttons, which no image may contain.
        assert "data-chart-label=" in figure and "data table" in figure, chart_id
        assert 'role="img"' not in figure, chart_id
        table = figure[figure.index("<table>") : figure.index("</table>")]
        assert "<caption" in table and '<th scope="col"' in table, chart_id
        assert table.count('<th scope="row">') >= 1, chart_id


def test_customers_tag_values_are_drawn_as_text_never_as_markup(staff_client, many_customers):
    """Plotly reads <b>, <a href> and other tags in labels; tags come from customers' code."""
    from usage.models import UsageDaily
    from usage.services import utc_today

    tag = '<a href="http://127.0.0.1/">click</a> & <b>co</b>'
    UsageDaily.objects.create(
        customer=many_customers(1)[0], day=utc_today() - dt.timedelta(days=1), model_id="m",
        application_id=tag, cost_center=tag, environment="", requests=1, input_tokens=5,
        output_tokens=5,
    )  # fmt: skip
    for name, chart_id in [
        ("staff:dashboard_models", "tokens-by-app-model"),
        ("staff:dashboard_heatmap", "app-customer-heatmap"),
    ]:
        response = staff_client.get(reverse(name))
        figure = _figure(response, chart_id)
        labels = figure["data"][0]["x"] if "heatmap" not in chart_id else figure["data"][0]["y"]
        assert labels == [
            '&lt;a href="http://127.0.0.1/"&gt;click&lt;/a&gt; &amp; &lt;b&gt;co&lt;/b&gt;'
        ]
        # the data table beside the chart shows the value as typed (Django escapes it once)
        assert "&lt;a href=&quot;http://127.0.0.1/&quot;&gt;click" in response.content.decode()
    cost = _figure(staff_client.get(reverse("staff:dashboard_cost")), "cost-by-tag")
    assert all("<" not in str(v) for v in cost["data"][0]["y"])
