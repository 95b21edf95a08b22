"""Who may see what. Every staff or customer view is wrapped by one of these.

Anonymous users are sent to the login page; a signed-in user of the wrong role gets 403.
Customer views get `request.customer`, the only customer whose data they may show.
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied


def is_staff_user(user) -> bool:
    return user.is_authenticated and user.is_active and user.is_staff


def is_customer_user(user) -> bool:
    return user.is_authenticated and user.is_active and getattr(user, "is_customer_user", False)


def staff_required(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not is_staff_user(request.user):
            raise PermissionDenied("This page is for staff.")
        return view(request, *args, **kwargs)

    return login_required(wrapped)


def customer_required(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not is_customer_user(request.user):
            raise PermissionDenied("This page is for customer accounts.")
        request.customer = request.user.customer
        return view(request, *args, **kwargs)

    return login_required(wrapped)


class StaffRequiredMixin(LoginRequiredMixin):
    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not is_staff_user(request.user):
            raise PermissionDenied("This page is for staff.")
        return super().dispatch(request, *args, **kwargs)


class CustomerRequiredMixin(LoginRequiredMixin):
    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            if not is_customer_user(request.user):
                raise PermissionDenied("This page is for customer accounts.")
            request.customer = request.user.customer
        return super().dispatch(request, *args, **kwargs)
