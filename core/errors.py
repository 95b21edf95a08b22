"""One base for the errors with which services refuse an action, each carrying its answer.

A service that cannot do what was asked (an invoice that is no longer a draft, a price that
cannot be applied) raises a ServiceError subclass: never a 500. The answer is decided once for
the API (core.api.errors.api_exception_handler: the JSON error shape with `status`) and once
for pages (ServiceErrorMiddleware below: the error page with the message), so a view that does
not catch one still answers properly. Views that can say more (a form with the message beside
the field) catch them themselves.
"""

from django.shortcuts import render


class ServiceError(Exception):
    """The action cannot be done as asked. `status`: the HTTP status it is answered with;
    `code`: a short machine-readable name for the API."""

    status = 400
    code = "invalid_request"


class StateConflict(ServiceError):
    """The object's current state does not allow the action (e.g. an issued invoice)."""

    status = 409
    code = "invalid_state"


class ServiceErrorMiddleware:
    """Pages (not /api/, which has its own JSON shape) answer a ServiceError that reached them
    with the error page: its status and its message, which services write for people."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, ServiceError) or request.path.startswith("/api/"):
            return None
        return render(
            request,
            "service_error.html",
            {"message": str(exception), "status": exception.status},
            status=exception.status,
        )
