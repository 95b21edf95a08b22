"""Staff dashboards: usage by application, user and model, and cost by tag. Thin: reads are
in selectors.py."""

from django.shortcuts import render

from core.access import staff_required
from usage.forms import StaffExportForm
from usage.services import utc_today

from . import selectors

PAGES = (
    ("dashboard_overview", "Overview"),
    ("dashboard_models", "Applications and models"),
    ("dashboard_heatmap", "Heatmap"),
    ("dashboard_cost", "Cost by tag"),
)


def _filters(request, *, with_customer=True):
    """The period (and optional customer) form; an invalid form keeps the default range."""
    form = StaffExportForm(request.GET or None)
    if not with_customer:
        del form.fields["customer"]
    valid = not form.is_bound or form.is_valid()
    start, end = form.range() if valid else (form.initial["start"], form.initial["end"])
    customer = form.cleaned_data.get("customer") if valid and form.is_bound else None
    return form, start, end, customer


def _render(request, template, context, status=200):
    return render(request, template, {"pages": PAGES, **context}, status=status)


@staff_required
def dashboard_overview(request):
    today = utc_today()
    live = selectors.live_today()
    context = {
        "live": live,
        "cost": selectors.month_cost(),
        "quota": selectors.quota_watch(today=today),
        "syncs": selectors.failing_syncs(),
        "alerts": selectors.recent_alerts(),
        **selectors.overview_for_page(today=today),
    }
    context["trend"] = selectors.trend_with_today(context["trend"], live=live, today=today)
    return _render(request, "dashboard/overview.html", context)


def _in_background(form, customer):
    """The default view (no filter) is what the warming task computes: on an emptied cache it
    is queued there, not aggregated in the request; a filtered view is computed here."""
    if form.is_bound or customer is not None:
        return None
    return selectors.queue_dashboards_warming


BEING_COMPUTED = {"billed_pending": True}


@staff_required
def dashboard_models(request):
    form, start, end, customer = _filters(request)
    context = selectors.models_and_applications(
        start=start,
        end=end,
        customer_id=customer.pk if customer else None,
        in_background=_in_background(form, customer),
    )
    return _render(
        request,
        "dashboard/models.html",
        {
            **(context or BEING_COMPUTED),
            "form": form,
            "start": start,
            "end": end,
            "customer": customer,
        },
    )


@staff_required
def dashboard_heatmap(request):
    form, start, end, customer = _filters(request)
    if customer is not None:
        context = selectors.application_user_heatmap(start=start, end=end, customer=customer)
    else:
        context = selectors.application_heatmap(
            start=start, end=end, in_background=_in_background(form, customer)
        )
    return _render(
        request,
        "dashboard/heatmap.html",
        {
            **(context or BEING_COMPUTED),
            "form": form,
            "start": start,
            "end": end,
            "customer": customer,
        },
    )


@staff_required
def dashboard_cost(request):
    form, start, end, customer = _filters(request)
    by = request.GET.get("by")
    by = by if by in selectors.COST_TAG_LABELS else "cost_center"
    cost = selectors.cost_by_tag(
        start=start,
        end=end,
        by=by,
        customer_id=customer.pk if customer else None,
        in_background=_in_background(form, customer),
    )
    return _render(
        request,
        "dashboard/cost.html",
        {
            "cost": cost,
            "billed_pending": cost is None,
            "by": by,
            "tags": selectors.COST_TAG_LABELS.items(),
            "form": form,
            "start": start,
            "end": end,
            "customer": customer,
        },
    )
