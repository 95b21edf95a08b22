"""Small helpers for the portal's HTML views (staff and customer pages) and the API."""

from axes.helpers import get_client_ip_address

from .access import is_staff_user

# Where a change was made, as the audit log records it.
SOURCE_API = "api"
SOURCE_STAFF = "staff portal"
SOURCE_CUSTOMER = "customer portal"


def audit_context(request) -> dict:
    """What a service records in the audit log of a change made through `request`: who acted,
    from which address, through what (the API, or the staff or customer pages)."""
    if request.path.startswith("/api/"):
        source = SOURCE_API
    elif is_staff_user(request.user):
        source = SOURCE_STAFF
    else:
        source = SOURCE_CUSTOMER
    return {"actor": request.user, "ip": get_client_ip_address(request), "source": source}


def posted_data(request):
    """The data to bind a form to: the POST, even an empty one, else None (an unbound form).

    `request.POST or None` leaves the form unbound on an empty POST, so a submission without
    fields re-rendered the blank form with no word of what was missing.
    """
    return request.POST if request.method == "POST" else None


def paginate(request, items, *, per_page: int, param: str = "page"):
    """One page of `items`, read from `?<param>=`; junk or out-of-range numbers give a real page.

    The page carries `param` and `base_query` (the other query parameters) so that
    portal/_pager.html links keep the rest of the query and several lists can share a URL.
    """
    from django.core.paginator import Paginator

    page = Paginator(items, per_page).get_page(request.GET.get(param))
    query = request.GET.copy()
    query.pop(param, None)
    page.param = param
    page.base_query = query.urlencode()
    return page


def confirm_first(
    request, *, title: str, message: str, button: str, cancel_url: str, items=(), danger=True
):
    """The confirmation step of a destructive POST: None once the POST says `confirm`, else the
    page that asks, re-posting the same fields with `confirm=1`.

    A JavaScript confirm() alone is no confirmation: without scripts, from a stale tab or a
    replayed form the action ran at once.
    """
    from django.shortcuts import render

    if request.method == "POST" and request.POST.get("confirm"):
        return None
    fields = [
        (name, value)
        for name, values in request.POST.lists()
        if name not in ("csrfmiddlewaretoken", "confirm")
        for value in values
    ]
    return render(
        request,
        "portal/confirm.html",
        {
            "title": title,
            "message": message,
            "button": button,
            "cancel_url": cancel_url,
            "items": items,
            "danger": danger,
            "fields": fields,
        },
    )
