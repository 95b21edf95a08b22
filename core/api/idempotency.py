"""`Idempotency-Key` on creating POSTs, as in Stripe's API.

The first request with a key runs and its answer is stored for 24 hours; a retry with the same
key and the same body gets the stored answer (header `Idempotent-Replayed: true`) without
running again; the same key with a different body is refused. Secret fields (a new token's
plaintext) are never stored, so a replay answers without them.
"""

import hashlib
import json
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.response import Response

from core.models import IdempotencyRecord

from .errors import error_body

HEADER = "HTTP_IDEMPOTENCY_KEY"
RETENTION = timedelta(hours=24)


def _request_hash(request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _error(request, code, message, http_status):
    body = error_body(type_="idempotency_error", code=code, message=message, request=request)
    return Response(body, status=http_status)


def run_idempotently(request, run, *, redact: tuple[str, ...] = ()):
    """Answer a creating POST with `run()` under the request's Idempotency-Key; `redact` names
    answer fields (secrets) never stored for replays."""
    key = request.META.get(HEADER, "").strip()
    if not key:
        return run()
    if len(key) > 255:
        return _error(request, "key_too_long", "Idempotency-Key is at most 255 characters.", 400)
    IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - RETENTION).delete()
    digest = _request_hash(request)
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                owner=request.user,
                key=key,
                method=request.method,
                path=request.path,
                request_hash=digest,
            )
    except IntegrityError:
        record = IdempotencyRecord.objects.get(owner=request.user, key=key)
        if record.request_hash != digest:
            return _error(
                request,
                "key_reused",
                "This Idempotency-Key was used with a different request; use a new key.",
                status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        if record.status_code is None:
            return _error(
                request,
                "request_in_progress",
                "A request with this Idempotency-Key is still running; retry shortly.",
                status.HTTP_409_CONFLICT,
            )
        replay = Response(record.response_body, status=record.status_code)
        replay["Idempotent-Replayed"] = "true"
        return replay
    try:
        response = run()
    except Exception:
        record.delete()  # nothing was stored: a retry may run again
        raise
    if response.status_code >= 500:
        record.delete()
        return response
    stored = response.data
    if isinstance(stored, dict) and redact:
        stored = {k: v for k, v in stored.items() if k not in redact}
    record.status_code = response.status_code
    record.response_body = json.loads(json.dumps(stored, default=str))
    record.save(update_fields=["status_code", "response_body"])
    return response


class IdempotentCreateMixin:
    """For ViewSets/APIViews: wraps `create` (POST) with Idempotency-Key handling."""

    idempotency_redact_fields: tuple[str, ...] = ()

    def create(self, request, *args, **kwargs):
        return self.idempotently(
            request, lambda: super(IdempotentCreateMixin, self).create(request, *args, **kwargs)
        )

    def idempotently(self, request, run):
        """Run `run()` (which answers a creating POST) under the request's Idempotency-Key."""
        return run_idempotently(request, run, redact=self.idempotency_redact_fields)
