"""Customer usage pages: only `request.customer`'s data, ever."""

from django.contrib import messages
from django.shortcuts import redirect, render

from core.access import customer_required
from core.web import paginate

from . import selectors
from .charts import customer_usage_charts
from .comparisons import quick_ranges, range_comparison
from .costing import usage_costs
from .export import usage_csv_response
from .forms import DateRangeForm, SummaryForm
from .services import usage_settings_update, utc_today

GROUPS = (
    ("model_id", "Model"),
    ("application_id", "Application"),
    ("cost_center", "Cost center"),
    ("environment", "Environment"),
)


def usage_breakdown(*, customer_id, start, end, by: str) -> dict:
    """Tokens per model, application, cost center or environment, each with its cost at list
    price when billing prices usage (usage/costing.py)."""
    rows = selectors.usage_grouped(customer_id=customer_id, start=start, end=end, by=by)
    costs = usage_costs(customer_id=customer_id, start=start, end=end, by=by)
    priced = costs["rows"] if costs else {}
    return {
        "by": by,
        "label": dict(GROUPS)[by],
        "rows": [{**r, "key": r[by], "cost": priced.get(r[by])} for r in rows],
        "costs": costs,
    }


@customer_required
def usage_overview(request):
    customer = request.customer
    form = DateRangeForm(request.GET or None)
    today = utc_today()
    context = {
        "customer": customer,
        "form": form,
        "live": selectors.realtime_usage(customer=customer, today=today),
    }
    if not form.is_bound or form.is_valid():
        start, end = form.range()
        by = request.GET.get("by") if request.GET.get("by") in dict(GROUPS) else "model_id"
        context.update(
            start=start,
            end=end,
            groups=GROUPS,
            breakdown=usage_breakdown(customer_id=customer.pk, start=start, end=end, by=by),
            totals=selectors.usage_totals(customer_id=customer.pk, start=start, end=end),
            days_missing=(end - start).days
            + 1
            - len(selectors.ingested_days(start=start, end=end)),
            comparison=range_comparison(customer_id=customer.pk, start=start, end=end, today=today),
            quick_ranges=quick_ranges(today),
            charts=customer_usage_charts(customer_id=customer.pk, start=start, end=end),
        )
    return render(request, "usage/customer_overview.html", context)


@customer_required
def usage_export(request):
    form = DateRangeForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return render(
            request,
            "usage/customer_overview.html",
            {"customer": request.customer, "form": form},
            status=400,
        )
    start, end = form.range()
    return usage_csv_response(customer_id=request.customer.pk, start=start, end=end, name="mine")


@customer_required
def usage_alerts(request):
    alerts = selectors.alert_list(customer_id=request.customer.pk)
    page = paginate(request, alerts, per_page=50)
    return render(request, "usage/alert_list.html", {"page": page, "staff": False})


@customer_required
def usage_summaries(request):
    current = selectors.usage_settings_for(customer=request.customer)
    form = SummaryForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        usage_settings_update(
            customer=request.customer, summary_frequency=form.cleaned_data["summary_frequency"]
        )
        messages.success(request, "Your usage summary preference is saved.")
        return redirect("customer:usage_summaries")
    return render(request, "usage/customer_summaries.html", {"form": form})
