import hashlib
from datetime import timedelta

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.throttling import SimpleRateThrottle

from core.access import is_customer_user, is_staff_user
from core.models import ApiKey

LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_api_key(key: str) -> str:
    """How an API key is stored and looked up: its SHA-256, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer bpk_...`: the request acts as the key's service account."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Send the header as 'Authorization: Bearer <API key>'.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("The API key has characters an API key never has.") from exc
        api_key = ApiKey.objects.select_related("owner").filter(key_hash=hash_api_key(key)).first()
        now = timezone.now()
        if api_key is None or not api_key.is_usable(now) or not api_key.owner.is_active:
            raise AuthenticationFailed("This API key is unknown, expired or revoked.")
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return api_key.owner, api_key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class IsStaffWithKeyScope(BasePermission):
    """Staff (browser session or API key). A read-only key may only read."""

    message = "This endpoint is for staff and staff API keys."

    def has_permission(self, request, view):
        if not is_staff_user(request.user):
            return False
        writing = request.method not in SAFE_METHODS
        if writing and isinstance(request.auth, ApiKey) and not request.auth.can_write:
            self.message = "This API key is read-only; use a read-write key to make changes."
            return False
        return True


class IsCustomerReadOnly(BasePermission):
    """Customer users read their own account's data; they never write through the API."""

    message = "Customer accounts have read-only API access to their own data."

    def has_permission(self, request, view):
        return is_customer_user(request.user) and request.method in SAFE_METHODS


class PerKeyRateThrottle(SimpleRateThrottle):
    """Each API key has its own per-minute limit; browser sessions share a per-user one."""

    scope = "api"
    rate = "600/min"

    def get_rate(self):
        return self.rate

    def allow_request(self, request, view):
        if isinstance(request.auth, ApiKey):
            self.num_requests, self.duration = request.auth.rate_limit_per_minute, 60
        else:
            self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            ident = f"key-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return f"throttle_{self.scope}_{ident}"
