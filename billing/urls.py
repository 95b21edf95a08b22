"""URLs of the billing app, mounted by portal/urls.py under /staff/ (namespace "staff") and /app/
(namespace "customer"). Name them with an app prefix: names share each namespace."""

from django.urls import path

from . import views_customer as customer
from . import views_payments as payments
from . import views_prices as prices
from . import views_staff as staff

staff_urlpatterns: list = [
    path("billing/invoices/", staff.billing_invoices, name="billing_invoices"),
    path("billing/run/", staff.billing_run, name="billing_run"),
    path("billing/runs/", staff.billing_runs, name="billing_runs"),
    path("billing/invoices/issue/", staff.billing_invoices_issue, name="billing_invoices_issue"),
    path("billing/catalog/", staff.billing_catalog, name="billing_catalog"),
    path("billing/prices/", prices.billing_prices, name="billing_prices"),
    path("billing/prices/new/", prices.billing_price_new, name="billing_price_new"),
    path("billing/plans/new/", staff.billing_plan_edit, name="billing_plan_new"),
    path("billing/plans/<int:plan_id>/", staff.billing_plan_edit, name="billing_plan_edit"),
    path(
        "billing/invoices/<uuid:invoice_id>/",
        staff.billing_invoice_detail,
        name="billing_invoice_detail",
    ),
    path(
        "billing/invoices/<uuid:invoice_id>/lines/",
        staff.billing_invoice_add_line,
        name="billing_invoice_add_line",
    ),
    path(
        "billing/invoices/<uuid:invoice_id>/lines/<int:line_id>/delete/",
        staff.billing_invoice_delete_line,
        name="billing_invoice_delete_line",
    ),
    path(
        "billing/invoices/<uuid:invoice_id>/issue/",
        staff.billing_invoice_issue,
        name="billing_invoice_issue",
    ),
    path(
        "billing/invoices/<uuid:invoice_id>/refresh/",
        staff.billing_invoice_refresh,
        name="billing_invoice_refresh",
    ),
    path(
        "billing/invoices/<uuid:invoice_id>/paid/",
        staff.billing_invoice_mark_paid,
        name="billing_invoice_mark_paid",
    ),
    path(
        "billing/invoices/<uuid:invoice_id>/credit-note/",
        staff.billing_invoice_credit_note,
        name="billing_invoice_credit_note",
    ),
    path(
        "billing/invoices/<uuid:invoice_id>/void/",
        staff.billing_invoice_void,
        name="billing_invoice_void",
    ),
    path(
        "billing/invoices/<uuid:invoice_id>/pdf/",
        staff.billing_invoice_pdf,
        name="billing_invoice_pdf",
    ),
    path(
        "billing/invoices/<uuid:invoice_id>/csv/",
        staff.billing_invoice_csv,
        name="billing_invoice_csv",
    ),
    path(
        "billing/invoices/<uuid:invoice_id>/payment-link/",
        payments.invoice_payment_link,
        name="billing_invoice_payment_link",
    ),
    path("billing/customers/", staff.billing_customers, name="billing_customers"),
    path("billing/customers/<uuid:customer_id>/", staff.billing_customer, name="billing_customer"),
    path(
        "billing/customers/<uuid:customer_id>/credits/",
        staff.billing_credit_grant,
        name="billing_credit_grant",
    ),
    path(
        "billing/customers/<uuid:customer_id>/plan/",
        staff.billing_plan_assign,
        name="billing_plan_assign",
    ),
    path(
        "billing/customers/<uuid:customer_id>/wallet/",
        staff.billing_profile_update,
        name="billing_profile_update",
    ),
]

customer_urlpatterns: list = [
    path("billing/", customer.billing_overview, name="billing_overview"),
    path("billing/invoices/", customer.invoice_list, name="invoice_list"),
    path("billing/invoices/<uuid:invoice_id>/", customer.invoice_detail, name="invoice_detail"),
    path("billing/invoices/<uuid:invoice_id>/pdf/", customer.invoice_pdf, name="invoice_pdf"),
    path("billing/invoices/<uuid:invoice_id>/csv/", customer.invoice_csv, name="invoice_csv"),
    path("billing/invoices/<uuid:invoice_id>/pay/", payments.invoice_pay, name="invoice_pay"),
    path("billing/credit/buy/", payments.credit_buy, name="credit_buy"),
]

# Outside /staff/ and /app/: called by Stripe, with no login (the signature is the check).
public_urlpatterns: list = [
    path("stripe/webhook/", payments.stripe_webhook, name="stripe_webhook"),
]
