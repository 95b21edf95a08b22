"""One error shape for the whole API, the same as the proxy's:
{"error": {"type", "code", "message", "fields"?, "request_id"}}."""

import logging
import uuid

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import ServiceError

logger = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    status_code = 409
    default_detail = "The object's current state does not allow this action."
    default_code = "conflict"


_TYPES = [
    (exceptions.NotAuthenticated, "authentication_error"),
    (exceptions.AuthenticationFailed, "authentication_error"),
    (exceptions.PermissionDenied, "permission_error"),
    (exceptions.NotFound, "not_found"),
    (exceptions.Throttled, "rate_limit_error"),
    (exceptions.ValidationError, "validation_error"),
    (exceptions.ParseError, "validation_error"),
    (exceptions.UnsupportedMediaType, "validation_error"),
    (exceptions.MethodNotAllowed, "invalid_request"),
    (exceptions.NotAcceptable, "invalid_request"),
    (Conflict, "invalid_state"),
]


def request_id_for(request) -> str:
    existing = getattr(request, "request_id", None)
    if existing:
        return existing
    supplied = request.META.get("HTTP_X_REQUEST_ID", "")
    rid = supplied if 0 < len(supplied) <= 64 and supplied.isprintable() else uuid.uuid4().hex
    request.request_id = rid
    return rid


def error_body(*, type_: str, code: str, message: str, request, fields=None) -> dict:
    error = {"type": type_, "code": code, "message": message, "request_id": request_id_for(request)}
    if fields:
        error["fields"] = fields
    return {"error": error}


def _first_message(detail) -> str:
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        return (
            f"{key}: {_first_message(value)}"
            if key != "non_field_errors"
            else _first_message(value)
        )
    return str(detail)


def _from_service(exc):
    """Services refuse with Django's ValidationError or a ServiceError (core/errors.py), which
    carries its status: never a 500."""
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return exceptions.ValidationError(exc.message_dict)
        return exceptions.ValidationError({"non_field_errors": exc.messages})
    if isinstance(exc, ServiceError):
        if exc.status == 400:
            return exceptions.ValidationError({"non_field_errors": [str(exc)]})
        if exc.status == 409:
            return Conflict(str(exc))
        refused = exceptions.APIException(str(exc), code=exc.code)
        refused.status_code = exc.status
        return refused
    return exc


def api_exception_handler(exc, context):
    exc = _from_service(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django's 500 handling (and ApiJsonErrorsMiddleware) take over
    request = context["request"]
    type_ = next((t for cls, t in _TYPES if isinstance(exc, cls)), "invalid_request")
    fields = None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        message = "The request has invalid fields: " + _first_message(exc.detail)
        code = "invalid_fields"
    else:
        message = _first_message(exc.detail)
        code = getattr(exc, "default_code", "error")
        if isinstance(exc.detail, exceptions.ErrorDetail):
            code = exc.detail.code or code
    response.data = error_body(
        type_=type_, code=code, message=message, request=request, fields=fields
    )
    response["X-Request-ID"] = request_id_for(request)
    return response


class ApiJsonErrorsMiddleware:
    """Under /api/, even unexpected errors answer in the API's JSON shape (never an HTML page)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not request.path.startswith("/api/"):
            return None
        logger.exception("API error on %s %s", request.method, request.path)
        body = error_body(
            type_="server_error",
            code="internal_error",
            message="Something went wrong on our side; please try again.",
            request=request,
        )
        return JsonResponse(body, status=500)


@csrf_exempt  # a POST to no endpoint is a JSON 404, not the CSRF failure page
def api_not_found(request, *args, **kwargs):
    body = error_body(
        type_="not_found",
        code="no_such_endpoint",
        message=f"There is no API endpoint at {request.path}. See /api/docs/.",
        request=request,
    )
    return JsonResponse(body, status=404)
