from django.conf import settings

from .access import is_customer_user, is_staff_user


def portal(request):
    user = getattr(request, "user", None)
    return {
        "is_staff_user": bool(user and is_staff_user(user)),
        "is_customer_user": bool(user and is_customer_user(user)),
        "proxy_base_url": settings.PROXY_BASE_URL,
    }
