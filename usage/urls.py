"""URLs of the usage app, mounted by portal/urls.py under /staff/ (namespace "staff") and /app/
(namespace "customer"). Name them with an app prefix: names share each namespace."""

from django.urls import path

from . import views_customer as customer
from . import views_staff as staff

staff_urlpatterns: list = [
    path("usage/", staff.usage_dashboard, name="usage_dashboard"),
    path("usage/ingest/", staff.usage_ingest, name="usage_ingest"),
    path("usage/ingest/<int:run_id>/", staff.usage_ingest_run, name="usage_ingest_run"),
    path("usage/reconciliation/", staff.usage_reconciliation, name="usage_reconciliation"),
    path("usage/alerts/", staff.usage_alerts, name="usage_alerts"),
    path("usage/anomalies/", staff.usage_anomalies, name="usage_anomalies"),
    path("usage/latency/", staff.usage_latency, name="usage_latency"),
    path("usage/export.csv", staff.usage_export, name="usage_export"),
    path("usage/customers/<uuid:customer_id>/", staff.usage_customer, name="usage_customer"),
    path(
        "usage/customers/<uuid:customer_id>/settings/",
        staff.usage_customer_settings,
        name="usage_customer_settings",
    ),
]
customer_urlpatterns: list = [
    path("usage/", customer.usage_overview, name="usage_overview"),
    path("usage/export.csv", customer.usage_export, name="usage_export"),
    path("usage/alerts/", customer.usage_alerts, name="usage_alerts"),
    path("usage/summaries/", customer.usage_summaries, name="usage_summaries"),
]
