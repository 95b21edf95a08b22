"""Small helpers for the portal's HTML views (staff and customer pages)."""


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
