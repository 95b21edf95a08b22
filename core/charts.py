"""Chart specifications for plotly.js, built from selector rows; no database access here.

A chart is a dict the template `dashboard/_chart.html` renders: the Plotly figure (embedded
with `json_script`, drawn client-side by portal/static/portal/charts.js) and the same numbers
as an accessible table. Money stays Decimal in the tables; in the figure it is a numeric
string (plotly.js reads numeric strings), so no float ever carries an amount.

Categories beyond a limit are folded into "Other", so a page's payload is bounded whatever
the number of models, applications or customers.
"""

import html
from collections import defaultdict
from decimal import Decimal

OTHER = "Other"
NONE_LABEL = "(none)"
# plotly's toolbar (zoom, download...) takes the top ~25 px of a chart, right-aligned; on a phone
# it spans most of the width.
TOOLBAR_PX = 32
BASE_LAYOUT = {
    "margin": {"l": 60, "r": 20, "t": 40, "b": 60},
    # Above the plot: below it, a long legend would cover the x axis title. Its top is placed
    # just under the toolbar, counted from the chart's top (`yref: container`, y set by
    # `_chart` from the height), and plotly moves the plot down below it, however many lines
    # it wraps to.
    "legend": {
        "orientation": "h",
        "x": 0,
        "xanchor": "left",
        "yref": "container",
        "yanchor": "top",
    },
    "font": {"family": "system-ui, sans-serif", "size": 12},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "height": 340,
}


def label(value) -> str:
    return str(value) if value not in ("", None) else NONE_LABEL


def _plot_value(value):
    return str(value) if isinstance(value, Decimal) else value


def top_keys(totals: dict, limit: int) -> list:
    """The `limit` biggest keys, biggest first (ties by name, for stable pages)."""
    ordered = sorted(totals, key=lambda k: (-totals[k], str(k)))
    return ordered[:limit]


def pivot(rows, *, row_key: str, col_key: str, value, max_rows: int = 15, max_cols: int = 10):
    """Rows of dicts -> (row labels, column labels, matrix), extra keys folded into Other.

    `value` is a function of one row. Returns labels ordered by their totals, biggest first.
    """
    row_totals, col_totals = defaultdict(int), defaultdict(int)
    cells = defaultdict(int)
    for r in rows:
        v = value(r)
        row_totals[r[row_key]] += v
        col_totals[r[col_key]] += v
        cells[(r[row_key], r[col_key])] += v
    keep_rows, keep_cols = top_keys(row_totals, max_rows), top_keys(col_totals, max_cols)
    row_labels = [label(k) for k in keep_rows]
    col_labels = [label(k) for k in keep_cols]
    if len(row_totals) > max_rows:
        row_labels.append(OTHER)
    if len(col_totals) > max_cols:
        col_labels.append(OTHER)
    row_index = {k: i for i, k in enumerate(keep_rows)}
    col_index = {k: i for i, k in enumerate(keep_cols)}
    matrix = [[0] * len(col_labels) for _ in row_labels]
    for (rk, ck), v in cells.items():
        i = row_index.get(rk, len(row_labels) - 1)
        j = col_index.get(ck, len(col_labels) - 1)
        matrix[i][j] += v
    return row_labels, col_labels, matrix


# Trace keys whose strings plotly draws as text. Plotly reads a few HTML tags in them (<b>,
# <a href>, <br>...), and labels come from customers' own tags (applicationId, costCenter).
PLOTLY_TEXT_KEYS = ("x", "y", "labels", "name", "text")


def _as_plain_text(value):
    """Escape &, < and > (plotly shows the entities as the characters), so a tag value like
    "<b>x</b>" is drawn as typed, never as markup or a link."""
    if isinstance(value, str):
        return html.escape(value, quote=False)
    if isinstance(value, list):
        return [_as_plain_text(v) for v in value]
    return value


def _with_legend_below_toolbar(layout: dict) -> dict:
    legend = layout.get("legend")
    if legend and legend.get("yref") == "container" and "y" not in legend:
        top = 1 - TOOLBAR_PX / layout["height"]
        layout["legend"] = {**legend, "y": round(top, 4)}
    return layout


def _chart(chart_id, title, data, layout, columns, rows, *, empty: bool) -> dict:
    data = [
        {key: _as_plain_text(v) if key in PLOTLY_TEXT_KEYS else v for key, v in trace.items()}
        for trace in data
    ]
    return {
        "id": chart_id,
        "data_id": f"{chart_id}-data",
        "title": title,
        "figure": {"data": data, "layout": _with_legend_below_toolbar({**BASE_LAYOUT, **layout})},
        "columns": columns,
        "rows": rows,
        "empty": empty,
    }


def stacked_bars(
    chart_id, title, *, x_labels, series: dict, x_title="", y_title="", x_type="category"
) -> dict:
    """One bar per x label, one stacked segment per series name ({name: [values by x]})."""
    data = [
        {"type": "bar", "name": name, "x": list(x_labels), "y": [_plot_value(v) for v in values]}
        for name, values in series.items()
    ]
    layout = {
        "barmode": "stack",
        "xaxis": {"title": {"text": x_title}, "type": x_type, "automargin": True},
        "yaxis": {"title": {"text": y_title}},
    }
    names = list(series)
    rows = [
        [x, *(series[n][i] for n in names), sum(series[n][i] for n in names)]
        for i, x in enumerate(x_labels)
    ]
    return _chart(
        chart_id, title, data, layout, [x_title, *names, "Total"], rows, empty=not x_labels
    )


def pie(chart_id, title, *, labels, values, value_title="Tokens") -> dict:
    total = sum(values)
    data = [
        {
            "type": "pie",
            "labels": list(labels),
            "values": [_plot_value(v) for v in values],
            "hole": 0.4,
            "sort": False,
        }
    ]
    rows = [
        [lab, v, f"{(Decimal(100) * v / total).quantize(Decimal('0.1'))}%" if total else "-"]
        for lab, v in zip(labels, values, strict=True)
    ]
    return _chart(chart_id, title, data, {}, ["Model", value_title, "Share"], rows, empty=not total)


def lines(chart_id, title, *, x_labels, series: dict, x_title="", y_title="", secondary=()) -> dict:
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": name,
            "x": list(x_labels),
            "y": [_plot_value(v) for v in values],
        }
        for name, values in series.items()
    ]
    layout = {
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}},
        "showlegend": len(series) > 1,
    }
    for name in secondary:
        # A second y axis on the right, for a series of another magnitude (requests vs tokens).
        data[list(series).index(name)]["yaxis"] = "y2"
        layout["yaxis2"] = {
            "title": {"text": name},
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "rangemode": "tozero",
            "automargin": True,
        }
        layout["yaxis"]["rangemode"] = "tozero"
    names = list(series)
    rows = [[x, *(series[n][i] for n in names)] for i, x in enumerate(x_labels)]
    return _chart(chart_id, title, data, layout, [x_title, *names], rows, empty=not x_labels)


PARTIAL_SUFFIX = " (today so far)"


def with_partial_point(chart: dict, *, x_label: str, values: dict) -> dict:
    """A line chart (from `lines`) with one more point per series for a day not over yet:
    drawn apart (open, lighter marker, dashed from the last full day), hover "today so far",
    and its table row marked the same, so a partial day never reads as a drop. `values` is
    {series name: value so far}; a series without one is left as it is."""
    data = [dict(trace) for trace in chart["figure"]["data"]]
    extra = []
    for trace in data:
        name = trace.get("name")
        if name not in values:
            continue
        xs, ys = trace.get("x") or [], trace.get("y") or []
        point = {
            "type": "scatter",
            "mode": "lines+markers",
            "name": f"{name}{PARTIAL_SUFFIX}",
            "x": [*xs[-1:], x_label],
            "y": [*ys[-1:], _plot_value(values[name])],
            "line": {"dash": "dot"},
            "marker": {"symbol": "circle-open", "size": 9},
            "opacity": 0.55,
            "showlegend": False,
            "hovertemplate": f"%{{x}}: %{{y:,}} {name.lower()}, today so far<extra></extra>",
            "meta": {"partial": True},
        }
        if "yaxis" in trace:
            point["yaxis"] = trace["yaxis"]
        extra.append(point)
    names = chart["columns"][1:]
    row = [f"{x_label}{PARTIAL_SUFFIX}", *(values.get(n, "") for n in names)]
    return {
        **chart,
        "figure": {**chart["figure"], "data": data + extra},
        "rows": [*chart["rows"], row],
        "partial_label": x_label,
        "empty": chart["empty"] and not extra,
    }


def heatmap(chart_id, title, *, x_labels, y_labels, matrix, x_title="", y_title="") -> dict:
    data = [
        {
            "type": "heatmap",
            "x": list(x_labels),
            "y": list(y_labels),
            "z": matrix,
            "colorscale": "Blues",
            "reversescale": True,  # plotly's Blues runs dark to light; more tokens = darker
            "hoverongaps": False,
        }
    ]
    layout = {
        "xaxis": {"title": {"text": x_title}, "type": "category"},
        "yaxis": {"title": {"text": y_title}, "type": "category", "automargin": True},
        "height": max(340, 40 + 28 * len(y_labels)),
        "margin": {"l": 160, "r": 20, "t": 30, "b": 100},
    }
    rows = [[y, *matrix[i]] for i, y in enumerate(y_labels)]
    return _chart(
        chart_id,
        title,
        data,
        layout,
        [f"{y_title} \\ {x_title}", *x_labels],
        rows,
        empty=not (x_labels and y_labels),
    )


def bars(chart_id, title, *, labels, values, x_title="", y_title="", columns=None, rows=None):
    """Simple horizontal bars (rankings); `columns`/`rows` override the default table."""
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "x": [_plot_value(v) for v in values],
            "y": list(labels),
        }
    ]
    layout = {
        "xaxis": {"title": {"text": x_title}},
        # No y title: the figure caption names it, and it would overlap long category labels.
        "yaxis": {"type": "category", "autorange": "reversed", "automargin": True},
        "height": max(260, 60 + 26 * len(labels)),
    }  # fmt: skip
    table_columns = columns or [y_title, x_title]
    table_rows = (
        rows if rows is not None else [[lab, v] for lab, v in zip(labels, values, strict=True)]
    )
    return _chart(chart_id, title, data, layout, table_columns, table_rows, empty=not labels)
