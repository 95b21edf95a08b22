"""How pages show models (the catalog's display name, with the model id on hover), periods
(in the one date format of core/formats) and default model parameters."""

import datetime as dt
import json
import re

from django import template
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join

from ..model_names import display_name

register = template.Library()


@register.filter
def model_name(model_id):
    """`<span title="anthropic.claude-3-haiku-…">Claude 3 Haiku</span>`; an id the catalog does
    not know is shown as it is."""
    if model_id in (None, ""):
        return ""
    name = display_name(model_id)
    return format_html('<span class="model" title="{}">{}</span>', model_id, name)


@register.filter
def model_names(model_ids, empty="all"):
    """A list of models as their display names, each with its id on hover, separated by
    commas; `empty` when the list is empty."""
    if not model_ids:
        return empty
    return format_html_join(", ", "{}", ((model_name(m),) for m in model_ids))


@register.filter
def model_label(model_id):
    """A model's display name as plain text (for text emails): "Claude 3 Haiku"."""
    return display_name(model_id) if model_id not in (None, "") else ""


@register.filter
def period(value):
    """An alert's or a summary's period as people read it, in the pages' one date format
    (core/formats): "2026-11" is "Nov 2026", "2026-11-25" is "25 Nov 2026", "2026-11-25 14"
    (an hour) is "25 Nov 2026 14:00 UTC", "2026-W47" is "week 47 of 2026". Other text is shown
    as it is."""
    text = "" if value is None else str(value)
    if week := re.fullmatch(r"(\d{4})-W(\d{2})", text):
        return f"week {int(week[2])} of {week[1]}"
    found = re.fullmatch(r"(\d{4})-(\d{2})(?:-(\d{2})(?:[ T](\d{2}))?)?", text)
    if not found:
        return text
    year, month, day, hour = found.groups()
    try:
        if day is None:
            return date_format(dt.date(int(year), int(month), 1), "YEAR_MONTH_FORMAT")
        if hour is None:
            return date_format(dt.date(int(year), int(month), int(day)), "DATE_FORMAT")
        moment = dt.datetime(int(year), int(month), int(day), int(hour), tzinfo=dt.UTC)
        return date_format(moment, "DATETIME_FORMAT")
    except ValueError:
        return text


@register.filter
def params_list(params):
    """Default model parameters ({"temperature": 0.2}) as a definition list, escaped:
    "temperature: 0.2"; a value that is a list or an object is shown as JSON."""
    if not params:
        return ""
    items = (
        (key, value if isinstance(value, str) else json.dumps(value))
        for key, value in sorted(params.items())
    )
    rows = format_html_join("", "<dt>{}</dt><dd>{}</dd>", items)
    return format_html('<dl class="params">{}</dl>', rows)


@register.filter
def day_label(value):
    """A chart table's row label: an ISO day ("2026-11-25", or "2026-11-25 (today so far)") in
    the pages' date format ("25 Nov 2026 (today so far)"); any other label as it is."""
    text = "" if value is None else str(value)
    found = re.match(r"(\d{4})-(\d{2})-(\d{2})(?![\d:T])", text)
    if not found:
        return text
    try:
        day = dt.date(*(int(part) for part in found.groups()))
    except ValueError:
        return text
    return date_format(day, "DATE_FORMAT") + text[found.end() :]
