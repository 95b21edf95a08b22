from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from billing import selectors as billing_selectors
from core.access import customer_required, is_customer_user, is_staff_user, staff_required
from customers.models import Customer
from usage import selectors as usage_selectors

from .dashboard.selectors import month_cost
from .health import LIVE_CHECKS, run_checks


def home(request):
    """Send each role to its own home page."""
    if is_staff_user(request.user):
        return redirect("staff:home")
    if is_customer_user(request.user):
        return redirect("customer:home")
    return redirect("login")


@staff_required
def staff_home(request):
    counts = {status: 0 for status in Customer.Status.values}
    for row in Customer.objects.values("status").order_by().annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    context = {
        "customer_counts": counts,
        # this month's cost from the cache, never rated in the request (queued when missing)
        "billing": billing_selectors.home_staff(cost=month_cost()),
        "usage": usage_selectors.home_staff(),
    }
    return render(request, "staff/home.html", context)


@customer_required
def customer_home(request):
    customer = request.customer
    context = {
        "customer": customer,
        "billing": billing_selectors.home_customer(customer),
        "usage": usage_selectors.home_customer(customer),
    }
    return render(request, "customer/home.html", context)


@require_GET
@never_cache
def healthz(request):
    """Everything the product needs, worker and beat included: what monitoring alerts on."""
    report = run_checks(with_details=is_staff_user(request.user))
    return JsonResponse(report, status=200 if report["ok"] else 503)


@require_GET
@never_cache
def healthz_live(request):
    """This web process and its database only: what a load balancer probes."""
    report = run_checks(with_details=is_staff_user(request.user), only=LIVE_CHECKS)
    return JsonResponse(report, status=200 if report["ok"] else 503)
