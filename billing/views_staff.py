"""Staff pages: drafts review and invoice actions, plans and wallets per customer, the run."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.access import staff_required
from core.web import confirm_first, paginate, posted_data
from customers.models import Customer

from . import selectors, services
from .credit_sync import credit_live
from .documents import invoice_csv_text, invoice_pdf_bytes
from .forms import (
    BillingProfileForm,
    CreditGrantForm,
    CreditNoteForm,
    InvoiceRunForm,
    ManualLineForm,
    PlanAssignForm,
    PricingPlanForm,
    VoidForm,
)
from .models import (
    Invoice,
    InvoiceImmutable,
    InvoiceLine,
    InvoiceRun,
    ModelPrice,
    PricingPlan,
)
from .payments import invoice_payments_panel
from .pricing import PricingError

# Business-rule refusals: shown to staff as a message, never a server error.
REFUSALS = (
    PricingError,
    services.InvoiceStateError,
    services.InvoiceRunRefused,
    InvoiceImmutable,
)


def _form_errors(request, form):
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else ""
        for error in errors:
            messages.error(request, f"{label or field}: {error}" if field != "__all__" else error)


@staff_required
def billing_invoices(request):
    status = request.GET.get("status", "draft")
    qs = selectors.invoice_list_for_staff(status=status)
    page = paginate(request, qs, per_page=50)
    return render(
        request,
        "billing/staff_invoice_list.html",
        {
            "page": page,
            "status": status,
            "statuses": Invoice.Status.choices,
            "run_form": InvoiceRunForm(),
        },
    )


@staff_required
@require_POST
def billing_run(request):
    """Queue the invoice run of a month (after commit); its progress is on the runs page."""
    form = InvoiceRunForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("staff:billing_invoices")
    try:
        run = services.invoice_run_request(
            period_start=form.cleaned_data["month"],
            trigger=InvoiceRun.Trigger.STAFF,
            requested_by=request.user,
        )
    except services.InvoiceRunBusy as exc:
        messages.error(request, f"Not queued: {exc}")
        return redirect("staff:billing_runs")
    except REFUSALS as exc:
        messages.error(request, f"The run stopped: {exc}")
        return redirect("staff:billing_invoices")
    messages.success(
        request,
        f"Invoice run for {run.period_start:%B %Y} queued (run #{run.pk}); "
        "its progress shows below.",
    )
    return redirect("staff:billing_runs")


@staff_required
def billing_runs(request):
    """Recent invoice runs (staff, monthly, command); the list refreshes itself while one of
    them is queued or running (htmx polling, as on the usage ingest run page)."""
    page = paginate(request, InvoiceRun.objects.select_related("requested_by"), per_page=25)
    return render(
        request,
        "billing/staff_run_list.html",
        {
            "page": page,
            "polling": any(run.active for run in page.object_list),
            "run_form": InvoiceRunForm(),
        },
    )


@staff_required
@require_POST
def billing_invoices_issue(request):
    """Issue the selected drafts, each in its own transaction (one failure stops no other)."""
    ids = request.POST.getlist("invoice")
    drafts = list(
        Invoice.objects.filter(pk__in=_valid_uuids(ids), status=Invoice.Status.DRAFT)
        .select_related("customer")
        .order_by("customer__name", "pk")
    )
    if drafts and (
        page := confirm_first(
            request,
            title=f"Issue {len(drafts)} draft invoice{'s' if len(drafts) != 1 else ''}?",
            message="Each gets the next number, uses the customer's prepaid credit, is emailed "
            "to the customer and can no longer change.",
            button="Issue and email",
            cancel_url=reverse("staff:billing_invoices"),
            items=[
                f"{d.customer.name}: {d.period_start:%Y-%m}, {d.total} {d.currency}" for d in drafts
            ],
            danger=False,
        )
    ):
        return page
    issued, refused = 0, []
    for invoice in drafts:
        try:
            services.invoice_issue(invoice=invoice)
            issued += 1
        except REFUSALS as exc:
            refused.append(str(exc))
    if issued:
        messages.success(
            request, f"{issued} invoice{'s' if issued != 1 else ''} issued and emailed."
        )
    for reason in refused[:5]:
        messages.error(request, reason)
    if not issued and not refused:
        messages.warning(request, "Select at least one draft to issue.")
    return redirect("staff:billing_invoices")


def _valid_uuids(values):
    import uuid

    valid = []
    for value in values:
        try:
            valid.append(uuid.UUID(value))
        except (ValueError, TypeError):
            continue
    return valid


@staff_required
def billing_invoice_detail(request, invoice_id):
    invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id)
    return render(
        request,
        "billing/staff_invoice_detail.html",
        {
            "invoice": invoice,
            "can_edit": invoice.status == Invoice.Status.DRAFT,
            "line_form": ManualLineForm(),
            "void_form": VoidForm(),
            "credit_note_form": CreditNoteForm(),
            "balance": selectors.credit_balance(invoice.customer_id),
            "payments": invoice_payments_panel(invoice),
        },
    )


def _invoice_action(request, invoice_id, action, success, confirm=None):
    """Run `action` on the invoice; with `confirm` (invoice -> title, message, button, and
    optionally danger), only after the confirmation step."""
    invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id)
    if confirm and (
        page := confirm_first(
            request,
            cancel_url=reverse("staff:billing_invoice_detail", args=[invoice.pk]),
            **confirm(invoice),
        )
    ):
        return page
    try:
        result = action(invoice)
    except REFUSALS as exc:
        messages.error(request, str(exc))
        return redirect("staff:billing_invoice_detail", invoice_id=invoice.pk)
    messages.success(request, success)
    target = result if isinstance(result, Invoice) else invoice
    return redirect("staff:billing_invoice_detail", invoice_id=target.pk)


@staff_required
@require_POST
def billing_invoice_add_line(request, invoice_id):
    form = ManualLineForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("staff:billing_invoice_detail", invoice_id=invoice_id)
    return _invoice_action(
        request,
        invoice_id,
        lambda inv: services.invoice_line_add(invoice=inv, **form.cleaned_data).invoice,
        "Line added.",
    )


@staff_required
@require_POST
def billing_invoice_delete_line(request, invoice_id, line_id):
    line = get_object_or_404(InvoiceLine, pk=line_id, invoice_id=invoice_id)
    return _invoice_action(
        request,
        invoice_id,
        lambda inv: services.invoice_line_delete(line=line),
        "Line removed.",
        confirm=lambda inv: {
            "title": f"Remove the line “{line.description}”?",
            "message": f"The line ({line.amount} {inv.currency}) is deleted from the draft of "
            f"{inv.customer.name}; the totals are recomputed.",
            "button": "Remove line",
        },
    )


@staff_required
@require_POST
def billing_invoice_issue(request, invoice_id):
    return _invoice_action(
        request,
        invoice_id,
        lambda inv: services.invoice_issue(invoice=inv),
        "Invoice issued and emailed to the customer.",
        confirm=lambda inv: {
            "title": f"Issue the invoice of {inv.customer.name} for {inv.period_start:%B %Y}?",
            "message": "It gets the next number, uses the customer's prepaid credit, is emailed "
            "to the customer and can no longer change.",
            "button": "Issue and email",
            "danger": False,
        },
    )


@staff_required
@require_POST
def billing_invoice_refresh(request, invoice_id):
    return _invoice_action(
        request,
        invoice_id,
        lambda inv: services.invoice_draft_refresh(invoice=inv),
        "Draft re-rated from the current usage (manual lines kept).",
        confirm=lambda inv: {
            "title": f"Re-rate the draft of {inv.customer.name} for {inv.period_start:%B %Y}?",
            "message": "Its usage lines are replaced by lines rated from the usage and prices "
            f"as they are now (the total, {inv.total} {inv.currency}, may change); manual lines "
            "are kept.",
            "button": "Re-rate draft",
        },
    )


@staff_required
@require_POST
def billing_invoice_mark_paid(request, invoice_id):
    return _invoice_action(
        request,
        invoice_id,
        lambda inv: services.invoice_mark_paid(invoice=inv, by=request.user),
        "Marked paid.",
    )


@staff_required
@require_POST
def billing_invoice_void(request, invoice_id):
    form = VoidForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("staff:billing_invoice_detail", invoice_id=invoice_id)
    return _invoice_action(
        request,
        invoice_id,
        lambda inv: services.invoice_void(invoice=inv, **form.cleaned_data),
        "Invoice voided."
        + (" A corrected draft was created." if form.cleaned_data["reissue"] else ""),
        confirm=lambda inv: {
            "title": f"Void {inv.number or 'this invoice'} of {inv.customer.name}?",
            "message": f"Reason: {form.cleaned_data['reason']}. Its credit is given back and it "
            "stays on record as void; this cannot be undone."
            + (" A corrected draft is created." if form.cleaned_data["reissue"] else ""),
            "button": "Void invoice",
        },
    )


@staff_required
@require_POST
def billing_invoice_credit_note(request, invoice_id):
    form = CreditNoteForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("staff:billing_invoice_detail", invoice_id=invoice_id)
    return _invoice_action(
        request,
        invoice_id,
        lambda inv: services.credit_note_issue(invoice=inv, **form.cleaned_data),
        "Credit note issued; its value is in the customer's prepaid credit.",
        confirm=lambda inv: {
            "title": f"Issue a credit note for {inv.number} of {inv.customer.name}?",
            "message": "It is numbered, emailed to the customer, its value goes to their "
            "prepaid credit, and it cannot be undone.",
            "button": "Issue credit note",
        },
    )


@staff_required
def billing_invoice_pdf(request, invoice_id):
    invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id)
    response = HttpResponse(invoice_pdf_bytes(invoice), content_type="application/pdf")
    name = invoice.number or f"draft-{invoice.pk}"
    response["Content-Disposition"] = f'attachment; filename="{name}.pdf"'
    return response


@staff_required
def billing_invoice_csv(request, invoice_id):
    invoice = get_object_or_404(Invoice, pk=invoice_id)
    response = HttpResponse(invoice_csv_text(invoice), content_type="text/csv; charset=utf-8")
    name = invoice.number or f"draft-{invoice.pk}"
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


@staff_required
def billing_customers(request):
    """Find a customer's billing page (plan, wallet), also before their first invoice."""
    query = request.GET.get("q", "").replace("\x00", "").strip()[:100]  # no NUL in SQL text
    page = paginate(request, selectors.customers_for_billing(query=query), per_page=50)
    return render(
        request,
        "billing/staff_customers.html",
        {"page": page, "q": query},
    )


@staff_required
def billing_customer(request, customer_id):
    customer = get_object_or_404(Customer, pk=customer_id)
    profile = services.billing_profile_get(customer_id=customer.pk)
    return render(
        request,
        "billing/staff_customer.html",
        {
            "customer": customer,
            "cost": selectors.cost_so_far(customer.pk),
            "balance": selectors.credit_balance(customer.pk),
            "live": credit_live(customer),
            "ledger": paginate(
                request, selectors.credit_ledger(customer.pk), per_page=50, param="ledger_page"
            ),
            "plans": selectors.plan_history(customer),
            "invoices": paginate(
                request,
                Invoice.objects.filter(customer=customer).order_by("-period_start", "-created_at"),
                per_page=24,
                param="invoices_page",
            ),
            "grant_form": CreditGrantForm(),
            "plan_form": PlanAssignForm(),
            "profile_form": BillingProfileForm(instance=profile),
        },
    )


def _customer_form_action(request, customer_id, form_class, action, success):
    customer = get_object_or_404(Customer, pk=customer_id)
    form = form_class(request.POST)
    if form.is_valid():
        try:
            action(customer, form.cleaned_data)
            messages.success(request, success)
        except REFUSALS as exc:
            messages.error(request, str(exc))
    else:
        _form_errors(request, form)
    return redirect("staff:billing_customer", customer_id=customer.pk)


@staff_required
@require_POST
def billing_credit_grant(request, customer_id):
    return _customer_form_action(
        request,
        customer_id,
        CreditGrantForm,
        lambda c, data: services.credit_grant(customer=c, by=request.user, **data),
        "Credits added.",
    )


@staff_required
@require_POST
def billing_plan_assign(request, customer_id):
    return _customer_form_action(
        request,
        customer_id,
        PlanAssignForm,
        lambda c, data: services.plan_assign(customer=c, by=request.user, **data),
        "Plan assigned.",
    )


@staff_required
@require_POST
def billing_profile_update(request, customer_id):
    customer = get_object_or_404(Customer, pk=customer_id)
    form = BillingProfileForm(
        request.POST, instance=services.billing_profile_get(customer_id=customer.pk)
    )
    if form.is_valid():
        form.save()
        messages.success(request, "Wallet settings saved.")
    else:
        _form_errors(request, form)
    return redirect("staff:billing_customer", customer_id=customer.pk)


@staff_required
def billing_plan_edit(request, plan_id=None):
    plan = get_object_or_404(PricingPlan, pk=plan_id) if plan_id else None
    form = PricingPlanForm(posted_data(request), instance=plan)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Plan “{form.instance.name}” saved.")
        return redirect("staff:billing_catalog")
    return render(request, "billing/staff_plan_form.html", {"form": form, "plan": plan})


@staff_required
def billing_catalog(request):
    return render(
        request,
        "billing/staff_catalog.html",
        {"plans": PricingPlan.objects.all(), "prices": ModelPrice.objects.all()},
    )
