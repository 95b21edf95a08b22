"""The charts of one customer's usage (the customer's usage page), from its billed rows."""

import datetime as dt
from collections import defaultdict

from core import charts

from . import selectors
from .services import days_between


def _tokens(row: dict) -> int:
    return row["input_tokens"] + row["output_tokens"]


def customer_usage_charts(*, customer_id, start: dt.date, end: dt.date) -> list[dict]:
    """Daily tokens by model (stacked), requests per day, tokens by application and by cost
    center: three grouped queries whatever the range or the number of models."""
    by_day_model = selectors.usage_grouped_by(
        start=start, end=end, fields=("day", "model_id"), customer_id=customer_id
    )
    days = days_between(start, end)
    model_totals = defaultdict(int)
    for r in by_day_model:
        model_totals[r["model_id"]] += _tokens(r)
    keep = charts.top_keys(model_totals, 8)
    series = {charts.label(m): [0] * len(days) for m in keep}
    if len(model_totals) > len(keep):
        series[charts.OTHER] = [0] * len(days)
    requests = [0] * len(days)
    index = {d: i for i, d in enumerate(days)}
    for r in by_day_model:
        i = index[r["day"]]
        name = charts.label(r["model_id"]) if r["model_id"] in keep else charts.OTHER
        series[name][i] += _tokens(r)
        requests[i] += r["requests"]
    x = [d.isoformat() for d in days]
    result = [
        charts.stacked_bars(
            "daily-tokens-by-model",
            "Tokens per day by model",
            x_labels=x if model_totals else [],
            series=series,
            x_title="Day (UTC)",
            y_title="Tokens",
            x_type="date",
        ),
        charts.lines(
            "requests-per-day",
            "Requests per day",
            x_labels=x if model_totals else [],
            series={"Requests": requests},
            x_title="Day (UTC)",
            y_title="Requests",
        ),
    ]
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
