"""Staff usage pages: ingest runs and re-ingest, reconciliation, alerts, per-customer usage,
unusual usage and latency by model."""

import datetime as dt

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from core.access import staff_required
from core.live import STAFF_TODAY
from core.live import figure as live_figure
from core.once import ALREADY_SENT, form_key_issue, form_key_use
from core.web import confirm_first, paginate, posted_data
from customers.models import Customer

from . import selectors
from .anomalies import anomaly_list, recent_anomalies
from .comparisons import quick_ranges, range_comparison, staff_comparisons
from .export import usage_csv_response
from .forms import (
    AnomalyFilterForm,
    DateRangeForm,
    IngestForm,
    LatencyFilterForm,
    StaffExportForm,
    UsageSettingsForm,
)
from .models import IngestRun
from .services import days_between, ingest_range_request, usage_settings_update, utc_today
from .views_customer import GROUPS, usage_breakdown


@staff_required
def usage_dashboard(request):
    live = live_figure(STAFF_TODAY)
    context = {
        "live": live,
        "top": live["rows"][:20],
        "runs": selectors.ingest_run_list()[:5],
        "differences": selectors.difference_list().count(),
        "alerts": selectors.alert_list()[:10],
        "export_form": StaffExportForm(),
        "comparisons": staff_comparisons(today=utc_today()),
        "anomalies": recent_anomalies(days=7, limit=10),
    }
    return render(request, "usage/staff_dashboard.html", context)


@staff_required
def usage_ingest(request):
    form = IngestForm(posted_data(request))
    if request.method == "POST" and form.is_valid():
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        days = len(days_between(start, end))
        stored = len(selectors.ingested_days(start=start, end=end))
        if page := confirm_first(
            request,
            title=f"Ingest {days} day(s), {start} to {end}?",
            message=f"The usage of these days is loaded again from the request events "
            f"({form.cleaned_data['engine'] or 'configured engine'}); {stored} of them already "
            "have usage, which is replaced day by day. Issued invoices do not change; drafts "
            "change only when re-rated.",
            button="Queue ingest",
            cancel_url=reverse("staff:usage_ingest"),
            danger=bool(stored),
        ):
            return page
        try:
            run = ingest_range_request(
                start=form.cleaned_data["start"],
                end=form.cleaned_data["end"],
                trigger=IngestRun.Trigger.STAFF,
                requested_by=request.user,
                engine=form.cleaned_data["engine"] or None,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Ingest of {run.days_total} day(s) queued.")
            return redirect("staff:usage_ingest_run", run_id=run.pk)
    page = paginate(request, selectors.ingest_run_list(), per_page=25)
    return render(request, "usage/staff_ingest.html", {"form": form, "page": page})


@staff_required
def usage_ingest_run(request, run_id):
    run = get_object_or_404(IngestRun, pk=run_id)
    context = {
        "run": run,
        "quarantined_days": run.ingested_days.filter(quarantined_rows__gt=0).order_by("day"),
        "quarantine": paginate(
            request, run.quarantined.order_by("day", "stage", "id"), per_page=50
        ),
    }
    return render(request, "usage/staff_ingest_run.html", context)


@staff_required
def usage_reconciliation(request):
    day = None
    if request.GET.get("day"):
        try:
            day = dt.date.fromisoformat(request.GET["day"])
        except ValueError:
            messages.error(request, "The day must be a date in YYYY-MM-DD form.")
    differences = selectors.difference_list(day=day)
    page = paginate(request, differences, per_page=50)
    return render(request, "usage/staff_reconciliation.html", {"page": page, "day": day})


@staff_required
def usage_alerts(request):
    page = paginate(request, selectors.alert_list(), per_page=50)
    return render(request, "usage/alert_list.html", {"page": page, "staff": True})


@staff_required
def usage_export(request):
    form = StaffExportForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        messages.error(request, " ".join(m for ms in form.errors.values() for m in ms))
        return redirect("staff:usage_dashboard")
    start, end = form.range()
    customer = form.cleaned_data.get("customer") if form.is_bound else None
    return usage_csv_response(
        customer_id=customer.pk if customer else None,
        start=start,
        end=end,
        name=str(customer.pk) if customer else "all",
    )


@staff_required
def usage_customer(request, customer_id):
    customer = get_object_or_404(Customer, pk=customer_id)
    form = DateRangeForm(request.GET or None)
    context = {
        "customer": customer,
        "form": form,
        "live": selectors.realtime_usage(customer=customer, today=utc_today()),
        "alerts": selectors.alert_list(customer_id=customer.pk)[:10],
        "options": selectors.usage_settings_for(customer=customer),
        "export_extra": f"&customer={customer.pk}",
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
            days_missing=len(days_between(start, end))
            - len(selectors.ingested_days(start=start, end=end)),
            comparison=range_comparison(
                customer_id=customer.pk, start=start, end=end, today=utc_today()
            ),
            quick_ranges=quick_ranges(utc_today()),
        )
    return render(request, "usage/staff_customer.html", context)


@staff_required
def usage_customer_settings(request, customer_id):
    customer = get_object_or_404(Customer, pk=customer_id)
    current = selectors.usage_settings_for(customer=customer)
    old_secret = current.webhook_secret
    form = UsageSettingsForm(request.POST or None, instance=current)
    status = 200
    if (
        request.method == "POST"
        and form.is_valid()
        and not form_key_use(request=request, purpose="usage_settings")
    ):
        form.add_error(None, ALREADY_SENT)  # a reload: the secret shown then stays the one
        status = 409
    elif request.method == "POST" and form.is_valid():
        saved = usage_settings_update(customer=customer, **form.changes())
        messages.success(request, "Usage alert settings saved.")
        if saved.webhook_secret != old_secret:
            # Shown once, in this answer, like a new token: a flash message would carry the
            # secret in the messages cookie (or the session) until the next page.
            response = render(
                request,
                "usage/staff_customer_settings.html",
                {
                    "customer": customer,
                    "form": UsageSettingsForm(instance=saved),
                    "new_webhook_secret": saved.webhook_secret,
                    "form_key": form_key_issue(user=request.user, purpose="usage_settings"),
                },
            )
            add_never_cache_headers(response)
            return response
        return redirect("staff:usage_customer", customer_id=customer.pk)
    form_key = form_key_issue(user=request.user, purpose="usage_settings")
    context = {"customer": customer, "form": form, "form_key": form_key}
    return render(request, "usage/staff_customer_settings.html", context, status=status)


@staff_required
def usage_anomalies(request):
    """Hours of unusual usage (usage/anomalies.py), newest first; bad filters are a 400."""
    form = AnomalyFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return render(request, "usage/staff_anomalies.html", {"form": form}, status=400)
    filters = form.filters()
    customer = filters["customer"]
    found = anomaly_list(
        since=utc_today() - dt.timedelta(days=filters["days"]),
        kind=filters["kind"],
        customer_id=customer.pk if customer else None,
    )
    page = paginate(request, found, per_page=50)
    return render(request, "usage/staff_anomalies.html", {"form": form, "page": page, **filters})


@staff_required
def usage_latency(request):
    """p50 / p95 latency and failed calls by model and day, from the usage events."""
    form = LatencyFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return render(request, "usage/staff_latency.html", {"form": form}, status=400)
    filters = form.filters()
    customer = filters["customer"]
    rows = selectors.latency_rows(
        start=filters["start"],
        end=filters["end"],
        model_id=filters["model_id"],
        customer_id=customer.pk if customer else None,
    )
    page = paginate(request, rows, per_page=50)
    return render(request, "usage/staff_latency.html", {"form": form, "page": page, **filters})
