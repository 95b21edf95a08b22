"""Customer pages: their wallet, cost so far, invoices. Only ever `request.customer`'s data."""

from django.http import HttpResponse
from django.shortcuts import render

from core.access import customer_required
from core.web import paginate

from . import selectors
from .credit_sync import credit_live
from .documents import invoice_csv_text, invoice_pdf_bytes
from .payments import invoice_pay_panel


@customer_required
def billing_overview(request):
    customer = request.customer
    return render(
        request,
        "billing/customer_overview.html",
        {
            "cost": selectors.cost_so_far(customer.pk),
            "balance": selectors.credit_balance(customer.pk),
            "live": credit_live(customer),
            "ledger": paginate(
                request, selectors.credit_ledger(customer.pk), per_page=50, param="ledger_page"
            ),
            "plans": selectors.plan_history(customer)[:12],
        },
    )


@customer_required
def invoice_list(request):
    page = paginate(request, selectors.invoices_for_customer(request.customer), per_page=25)
    return render(request, "billing/customer_invoice_list.html", {"page": page})


@customer_required
def invoice_detail(request, invoice_id):
    invoice = selectors.invoice_get_for_customer(request.customer, invoice_id)
    context = {
        "invoice": invoice,
        "pay": invoice_pay_panel(invoice, outcome=request.GET.get("payment", "")),
    }
    return render(request, "billing/customer_invoice_detail.html", context)


@customer_required
def invoice_pdf(request, invoice_id):
    invoice = selectors.invoice_get_for_customer(request.customer, invoice_id)
    response = HttpResponse(invoice_pdf_bytes(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{invoice.number}.pdf"'
    return response


@customer_required
def invoice_csv(request, invoice_id):
    invoice = selectors.invoice_get_for_customer(request.customer, invoice_id)
    response = HttpResponse(invoice_csv_text(invoice), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{invoice.number}.csv"'
    return response
