"""What every resource of the API shares: who may call it, whose data it sees, the audit
context for services, JSON-only bodies, filters safe on PostgreSQL, and the error responses
its schema documents (service refusals become 400/409 in errors.py)."""

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import django_filters
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.parsers import BaseParser
from rest_framework.permissions import BasePermission
from rest_framework.schemas.inspectors import ViewInspector

from core.access import is_customer_user, is_staff_user

from .auth import IsCustomerReadOnly, IsStaffWithKeyScope
from .parsers import DepthLimitedJSONParser

if TYPE_CHECKING:
    from rest_framework.permissions import _PermissionClass

ErrorSerializer = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorDetail",
            {
                "type": serializers.CharField(),
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(required=False),
                "request_id": serializers.CharField(),
            },
        )
    },
)

_ERROR_STATUSES = {
    "400": "Invalid input; `fields` names each invalid field.",
    "401": "No credentials, or an unknown, expired or revoked API key.",
    "403": "Not allowed for this user or key (e.g. a read-only key writing).",
    "404": "No such object, or not yours.",
    "409": "The object's state does not allow this action.",
    "429": "Rate limit exceeded; see Retry-After.",
}


IDEMPOTENCY_KEY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": (
        "Retry this creating POST safely: a retry with the same key and body within 24 h gets "
        "the stored answer (header `Idempotent-Replayed: true`) without running again; the same "
        "key with another body is 422; while the first is still running, 409."
    ),
}


class PortalAutoSchema(AutoSchema):
    """Every operation documents the API's one error shape for each error status, and every
    creating POST (one answering 201 or 202) its `Idempotency-Key` header and the 422 a reused
    key gets."""

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        responses = (operation or {}).get("responses", {})
        if self.method == "POST" and {"201", "202"} & set(responses):
            operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY_PARAMETER)
            error = self._get_response_for_code(ErrorSerializer, "422")
            responses.setdefault(
                "422", {**error, "description": "This Idempotency-Key was used with another body."}
            )
        return operation

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction=direction)
        error = self._get_response_for_code(ErrorSerializer, "400")
        for status, description in _ERROR_STATUSES.items():
            if status not in responses:
                responses[status] = {**error, "description": description}
        return responses

    def _is_list_view(self, serializer=None):
        # A collection route answering one object (e.g. a wallet: balance and grants).
        if getattr(self.view, "answers_one_object", False):
            return False
        return super()._is_list_view(serializer)


NO_CUSTOMER = "00000000-0000-0000-0000-000000000000"


def customer_scope(request):
    """None for staff (every customer); the user's own customer id for customer users."""
    if is_staff_user(request.user):
        return None
    return getattr(request.user, "customer_id", None) or NO_CUSTOMER


def schema_only(view) -> bool:
    """True while drf-spectacular inspects the view (no real request, no user)."""
    return getattr(view, "swagger_fake_view", False)


class StaffOrOwnCustomerReadOnly(BasePermission):
    """Staff (session or key; a read-only key only reads) or a customer user reading."""

    message = "Customer accounts have read-only API access to their own data."

    def has_permission(self, request, view):
        if is_staff_user(request.user):
            staff = IsStaffWithKeyScope()
            allowed = staff.has_permission(request, view)
            self.message = staff.message
            return allowed
        if is_customer_user(request.user):
            return IsCustomerReadOnly().has_permission(request, view)
        return False


class StaffViewSetMixin:
    schema: ViewInspector | None = PortalAutoSchema()
    parser_classes: Sequence[type[BaseParser]] = [DepthLimitedJSONParser]
    permission_classes: Sequence["_PermissionClass"] = [IsStaffWithKeyScope]


class SharedViewSetMixin:
    """Readable by customer users too; `scoped(queryset, field)` keeps them to their own data."""

    schema: ViewInspector | None = PortalAutoSchema()
    parser_classes: Sequence[type[BaseParser]] = [DepthLimitedJSONParser]
    permission_classes: Sequence["_PermissionClass"] = [StaffOrOwnCustomerReadOnly]

    def scoped(self, queryset, field="customer_id"):
        customer_id = customer_scope(self.request)
        return queryset if customer_id is None else queryset.filter(**{field: customer_id})


class StaffViewSet(StaffViewSetMixin, viewsets.GenericViewSet):
    pass


class SharedViewSet(SharedViewSetMixin, viewsets.GenericViewSet):
    pass


def storable_json(value):
    """Refuse JSON that PostgreSQL's jsonb cannot hold: NUL characters and lone surrogates."""

    def bad(text: str) -> bool:
        return "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)

    def walk(item):
        if isinstance(item, str) and bad(item):
            raise serializers.ValidationError("Text may not contain NUL or surrogate characters.")
        if isinstance(item, dict):
            for key, inner in item.items():
                walk(key)
                walk(inner)
        elif isinstance(item, list):
            for inner in item:
                walk(inner)

    walk(value)
    return value


UUID_RE = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


class UtcDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 instant, converted to UTC: an offset PostgreSQL cannot store (beyond
    ±15:59) or an instant out of range is a 400, never a database error."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(dt.UTC)
        except OverflowError:
            raise django_filters.fields.forms.ValidationError(
                "This instant is out of range.", code="invalid"
            ) from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class CustomerFilterSet(django_filters.FilterSet):
    """`?customer=<uuid>`: an unknown id filters to nothing (a 200), not a 400."""

    customer = django_filters.UUIDFilter(field_name="customer_id")
