"""The charts of one customer's usage (the customer's usage page), from its billed rows."""

import datetime as dt
from collections import defaultdict

from core import charts

from . import selectors
from .services import days_between, utc_today


def _tokens(row: dict) -> int:
    return row["input_tokens"] + row["output_tokens"]


def customer_usage_charts(
    *, customer_id, start: dt.date, end: dt.date, today: dt.date | None = None
) -> list[dict]:
    """Daily tokens by model (stacked), requests per day, tokens by application and by cost
    center: three grouped queries whatever the range or the number of models. Days after
    `today` (UTC) are left out, and today, not over yet, is drawn as a partial point
    (charts.with_partial_point: "today so far"), never as a full day."""
    today = today or utc_today()
    by_day_model = selectors.usage_grouped_by(
        start=start, end=end, fields=("day", "model_id"), customer_id=customer_id
    )
    days = days_between(start, min(end, today - dt.timedelta(days=1)))
    partial = start <= today <= end
    model_totals = defaultdict(int)
    for r in by_day_model:
        model_totals[r["model_id"]] += _tokens(r)
    keep = charts.top_keys(model_totals, 8)
    series = {charts.label(m): [0] * len(days) for m in keep}
    if len(model_totals) > len(keep):
        series[charts.OTHER] = [0] * len(days)
    requests = [0] * len(days)
    today_tokens = dict.fromkeys(series, 0)
    today_requests = 0
    index = {d: i for i, d in enumerate(days)}
    for r in by_day_model:
        name = charts.label(r["model_id"]) if r["model_id"] in keep else charts.OTHER
        if r["day"] == today:
            today_tokens[name] += _tokens(r)
            today_requests += r["requests"]
        elif r["day"] in index:
            i = index[r["day"]]
            series[name][i] += _tokens(r)
            requests[i] += r["requests"]
    x = [d.isoformat() for d in days]
    tokens_chart = charts.stacked_bars(
        "daily-tokens-by-model",
        "Tokens per day by model",
        x_labels=x if model_totals else [],
        series=series,
        x_title="Day (UTC)",
        y_title="Tokens",
        x_type="date",
    )
    requests_chart = charts.lines(
        "requests-per-day",
        "Requests per day",
        x_labels=x if model_totals else [],
        series={"Requests": requests},
        x_title="Day (UTC)",
        y_title="Requests",
    )
    if partial and model_totals:
        day = today.isoformat()
        values = {**today_tokens, "Total": sum(today_tokens.values())}  # the table's last column
        tokens_chart = charts.with_partial_point(tokens_chart, x_label=day, values=values)
        requests_chart = charts.with_partial_point(
            requests_chart, x_label=day, values={"Requests": today_requests}
        )
    result = [tokens_chart, requests_chart]
    for by, title, chart_id in (
        ("application_id", "Application", "tokens-by-application"),
        ("cost_center", "Cost center", "tokens-by-cost-center"),
    ):
        rows = selectors.usage_grouped(customer_id=customer_id, start=start, end=end, by=by)
        rows.sort(key=lambda r: -_tokens(r))
        rows = rows[:20]
        result.append(
            charts.bars(
                chart_id,
                f"Tokens by {title.lower()}",
                labels=[charts.label(r[by]) for r in rows],
                values=[_tokens(r) for r in rows],
                x_title="Tokens",
                y_title=title,
                columns=[title, "Requests", "Input tokens", "Output tokens"],
                rows=[
                    [charts.label(r[by]), r["requests"], r["input_tokens"], r["output_tokens"]]
                    for r in rows
                ],
            )
        )
    return result
