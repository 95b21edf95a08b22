"""API keys for staff service accounts: created once, shown once, stored as SHA-256 hashes."""

import secrets
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from core.api.auth import hash_api_key
from core.models import ApiKey, User
from customers.audit import audit_record

API_KEY_PREFIX = "bpk_"


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    plaintext: str  # shown to the caller once, never stored

    def __repr__(self):  # never let the plaintext reach a log or error report through repr()
        return f"IssuedApiKey(api_key={self.api_key.pk})"


def _service_account(name: str) -> User:
    email = f"svc-{slugify(name) or 'automation'}@service-accounts.invalid"
    user, created = User.objects.get_or_create(
        email=email,
        defaults={"is_staff": True, "is_service_account": True, "full_name": f"API: {name}"},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


@transaction.atomic
def api_key_create(
    *,
    name: str,
    scope: str,
    created_by: User,
    expires_at: datetime | None = None,
    rate_limit_per_minute: int | None = None,
    ip: str | None = None,
) -> IssuedApiKey:
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        name=name,
        owner=_service_account(name),
        key_hash=hash_api_key(plaintext),
        display_prefix=plaintext[:8],
        last4=plaintext[-4:],
        scope=scope,
        created_by=created_by,
        expires_at=expires_at,
        **({"rate_limit_per_minute": rate_limit_per_minute} if rate_limit_per_minute else {}),
    )
    _audit(api_key, "api_key.created", actor=created_by, ip=ip, before=None)
    return IssuedApiKey(api_key=api_key, plaintext=plaintext)


def _audit(api_key: ApiKey, action: str, *, actor, ip, before: dict | None) -> None:
    audit_record(
        customer=None,
        actor=actor,
        action=action,
        object_type="api_key",
        object_id=str(api_key.pk),
        before=before,
        after=_audited(api_key),
        ip=ip,
    )


def _audited(api_key: ApiKey) -> dict:
    """What the audit trail keeps of a key: never the key or its hash."""
    return {
        "name": api_key.name,
        "scope": api_key.scope,
        "key": f"{api_key.display_prefix}…{api_key.last4}",
        "expires_at": api_key.expires_at.isoformat() if api_key.expires_at else None,
        "rate_limit_per_minute": api_key.rate_limit_per_minute,
        "revoked_at": api_key.revoked_at.isoformat() if api_key.revoked_at else None,
    }


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: User | None = None, ip: str | None = None) -> ApiKey:
    if api_key.revoked_at is None:
        before = _audited(api_key)
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        _audit(api_key, "api_key.revoked", actor=actor, ip=ip, before=before)
    return api_key
