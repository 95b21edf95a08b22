"""Forms that create a secret submit once.

The page that shows a new token (or API key, or webhook secret) is the answer to the POST that
created it: the secret is never stored, so it cannot be shown again after a redirect. A reload
of that page, or Back and re-send, would POST the form again and create a second live secret.
So each such form carries a one-time key, made when the form is shown: the first POST uses it
up, and a POST with a used key creates nothing and says why. Back to the form then send again
is caught too, although the browser fetches the form again (with a fresh key): the same user
sending the same values to the same form within RESEND_WINDOW of a first use is a re-send.

A POST without a key (a script, a page from before the keys) is still served: the portal's
pages always send one, and scripts should use the REST API (docs/api.md). Refusing it is the
next step, once the tests and any remaining callers send the key.
"""

import hashlib
import json
import secrets
from datetime import timedelta

from django.core.cache import cache
from django.utils import timezone

from .models import FormSubmissionKey

FIELD = "form_key"
KEEP = timedelta(days=2)
ALREADY_SENT = (
    "This form was already sent, and the secret it created was shown once then: it is not "
    "shown again, and nothing new was created. If you did not copy it, rotate or revoke it, "
    "or create another one with another name."
)
RESEND_WINDOW = timedelta(minutes=10)
_NOT_VALUES = {FIELD, "csrfmiddlewaretoken"}


def _sent_values_key(request, purpose: str) -> str:
    """The cache key of this user's POST of these values to this form."""
    values = sorted((k, v) for k, vs in request.POST.lists() if k not in _NOT_VALUES for v in vs)
    text = json.dumps([str(request.user.pk), purpose, request.path, values])
    return "once:sent:" + hashlib.sha256(text.encode()).hexdigest()


def form_key_issue(*, user, purpose: str) -> str:
    """A fresh key for one rendering of the form; keys older than two days are dropped."""
    if user is None or not user.is_authenticated:
        return ""
    FormSubmissionKey.objects.filter(created_at__lt=timezone.now() - KEEP).delete()
    key = secrets.token_urlsafe(24)
    FormSubmissionKey.objects.create(key=key, user=user, purpose=purpose)
    return key


def form_key_spent(*, request, purpose: str) -> bool:
    """The POST carries a key of this form that was already used (a re-send)."""
    key = request.POST.get(FIELD, "")
    if not key or "\x00" in key:
        return False
    if cache.get(_sent_values_key(request, purpose)):
        return True  # the same values again: Back to a form fetched again, then send
    return FormSubmissionKey.objects.filter(
        key=key[:64], user=request.user, purpose=purpose, used_at__isnull=False
    ).exists()


def form_key_use(*, request, purpose: str) -> bool:
    """True if this POST may create its secret: it carries no key, or an unused key of this
    user and purpose, now used up. False for a used, unknown or foreign key."""
    key = request.POST.get(FIELD, "")
    if not key:
        return True
    if "\x00" in key:  # PostgreSQL refuses NUL in text: an unknown key, not a 500
        return False
    sent = _sent_values_key(request, purpose)
    if cache.get(sent):
        return False  # the same values again: Back to a form fetched again, then send
    used = FormSubmissionKey.objects.filter(
        key=key[:64], user=request.user, purpose=purpose, used_at__isnull=True
    ).update(used_at=timezone.now())
    if used == 1:
        cache.set(sent, 1, int(RESEND_WINDOW.total_seconds()))
    return used == 1
