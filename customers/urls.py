"""URLs of the customers app, mounted by portal/urls.py under /staff/ (namespace "staff") and /app/
(namespace "customer"). Name them with an app prefix: names share each namespace."""

from django.urls import path

from . import views, views_audit, views_customer, views_tokens

staff_urlpatterns: list = [
    path("customers/", views.customer_list, name="customer_list"),
    path("customers/new/", views.customer_onboard_view, name="customer_onboard"),
    path("customers/bulk/", views.customer_bulk, name="customer_bulk"),
    path("customers/<uuid:pk>/", views.customer_detail, name="customer_detail"),
    path("customers/<uuid:pk>/edit/", views.customer_edit, name="customer_edit"),
    path("customers/<uuid:pk>/limits/", views.customer_limits, name="customer_limits"),
    path("customers/<uuid:pk>/status/", views.customer_status, name="customer_status"),
    path("customers/<uuid:pk>/invite/", views.customer_invite, name="customer_invite"),
    path(
        "customers/<uuid:pk>/users/<int:user_id>/",
        views.customer_user_action,
        name="customer_user_action",
    ),
    path("customers/<uuid:pk>/sync/", views.customer_sync_now, name="customer_sync_now"),
    path("customers/<uuid:pk>/tokens/new/", views_tokens.token_create, name="token_create"),
    path(
        "customers/<uuid:pk>/tokens/<uuid:token_id>/rotate/",
        views_tokens.token_rotate,
        name="token_rotate",
    ),
    path(
        "customers/<uuid:pk>/tokens/<uuid:token_id>/revoke/",
        views_tokens.token_revoke,
        name="token_revoke",
    ),
    path(
        "customers/<uuid:pk>/tokens/<uuid:token_id>/limits/",
        views_tokens.token_limits,
        name="token_limits",
    ),
    path("tokens/issued/", views_tokens.token_issued, name="token_issued"),
    path("audit/", views_audit.audit_log, name="audit_log"),
]
customer_urlpatterns: list = [
    path("tokens/", views_customer.customer_tokens, name="customer_tokens"),
    path(
        "tokens/<uuid:token_id>/rotate/",
        views_customer.customer_token_rotate,
        name="customer_token_rotate",
    ),
    path(
        "tokens/<uuid:token_id>/revoke/",
        views_customer.customer_token_revoke,
        name="customer_token_revoke",
    ),
    path(
        "tokens/<uuid:token_id>/reveal/",
        views_customer.customer_token_reveal,
        name="customer_token_reveal",
    ),
    path(
        "tokens/<uuid:token_id>/limits/",
        views_customer.customer_token_limits,
        name="customer_token_limits",
    ),
]
