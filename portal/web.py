"""Small helpers for the portal's HTML views (staff and customer pages)."""


def posted_data(request):
    """The data to bind a form to: the POST, even an empty one, else None (an unbound form).

    `request.POST or None` leaves the form unbound on an empty POST, so a submission without
    fields re-rendered the blank form with no word of what was missing.
    """
    return request.POST if request.method == "POST" else None
