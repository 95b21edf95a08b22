"""Forms that create a secret submit once.

The page that shows a new token (or API key, or webhook secret) is the answer to the POST that
created it: the secret is never stored, so it cannot be shown again after a redirect. A reload
of that page, or Back and re-send, would POST the form again and create a second live secret.
So each such form carries a one-time key, made when the form is shown: the first POST uses it
up, and a POST with a used key creates nothing and says why. A POST without a key (a script, an
older page) is served as before; browsers always send it.
"""

import secrets
from datetime import timedelta

from django.utils import timezone

from .models import FormSubmissionKey

FIELD = "form_key"
KEEP = timedelta(days=2)
ALREADY_SENT = (
    "This form was already sent, and what it created was shown once then. Nothing new was "
    "created. If you did not copy the secret, rotate or revoke it, or create another one."
)


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
    return (
        bool(key)
        and FormSubmissionKey.objects.filter(
            key=key[:64], user=request.user, purpose=purpose, used_at__isnull=False
        ).exists()
    )


def form_key_use(*, request, purpose: str) -> bool:
    """True if this POST may create its secret: it carries no key, or an unused key of this
    user and purpose, now used up. False for a used, unknown or foreign key."""
    key = request.POST.get(FIELD, "")
    if not key:
        return True
    used = FormSubmissionKey.objects.filter(
        key=key[:64], user=request.user, purpose=purpose, used_at__isnull=True
    ).update(used_at=timezone.now())
    return used == 1
