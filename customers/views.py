"""Staff pages for customers: list, onboarding, detail, edits, status, bulk actions, sync."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.access import staff_required
from core.once import ALREADY_SENT, form_key_issue, form_key_spent, form_key_use
from core.web import audit_context, confirm_first, paginate, posted_data

from . import live, rotation, selectors, services
from .forms import (
    BulkForm,
    CustomerDetailsForm,
    CustomerFilterForm,
    InviteForm,
    LimitsForm,
    OnboardForm,
)
from .models import Customer
from .onboarding import (
    customer_onboard,
    customer_user_invite,
    customer_user_resend_invite,
    customer_user_set_active,
    customers_bulk_reactivate,
    customers_bulk_set_limits,
    customers_bulk_suspend,
)
from .sync import outbox_deliver
from .views_helpers import get_customer_or_404
from .views_tokens import render_issued

PAGE_SIZE = 50


def _add_errors(form, error: ValidationError) -> None:
    for message in error.messages:
        form.add_error(None, message)


@staff_required
def customer_list(request):
    filters = CustomerFilterForm(request.GET or None)
    values = {}
    if filters.is_bound:
        filters.is_valid()  # cleaned_data keeps the valid filters even when another is bad
        values = filters.cleaned_data
    customers = selectors.customer_list(
        search=values.get("q", ""),
        status=values.get("status", ""),
        order=values.get("sort") or "name",
        sync=values.get("sync", ""),
    )
    page = Paginator(customers, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    month = live.month_usage(page.object_list)
    for customer in page.object_list:
        customer.month = month["rows"].get(customer.pk)
    query = request.GET.copy()
    query.pop("page", None)
    sort_query = query.copy()
    sort_query.pop("sort", None)
    return render(
        request,
        "staff/customers/list.html",
        {
            "filters": filters,
            "page": page,
            "query": query.urlencode(),
            "sort_query": sort_query.urlencode(),
            "sort": values.get("sort") or "name",
            "bulk_actions": BulkForm.ACTIONS,
            "month": month,
        },
    )


@staff_required
def customer_onboard_view(request):
    form = OnboardForm(posted_data(request))
    status = 200
    # Checked before the form: a re-sent onboarding would fail as "name taken" instead.
    if request.method == "POST" and (
        form_key_spent(request=request, purpose="onboard")
        or (form.is_valid() and not form_key_use(request=request, purpose="onboard"))
    ):
        form.add_error(None, ALREADY_SENT)  # a reload of the page that showed the token
        status = 409
    elif request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            customer, user, issued = customer_onboard(
                name=data["name"],
                contact_email=data["contact_email"],
                user_email=data["user_email"],
                user_full_name=data["user_full_name"],
                token_label=data["token_label"],
                token_expires_at=form.expires_at(),
                **{name: data[name] for name in services.LIMIT_FIELDS if name in data},
                **audit_context(request),
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, f"{customer.name} is onboarded; {user.email} is invited.")
            return render_issued(request, issued, invited=user.email)
    form_key = form_key_issue(user=request.user, purpose="onboard")
    context = {"form": form, "form_key": form_key}
    return render(request, "staff/customers/onboard.html", context, status=status)


@staff_required
def customer_detail(request, pk):
    customer = get_customer_or_404(pk)
    tokens = paginate(
        request, selectors.token_list(customer=customer), per_page=PAGE_SIZE, param="tokens_page"
    )
    tokens.object_list = rotation.with_rotation_days(
        live.with_last_use(tokens.object_list), customer
    )
    users = paginate(
        request, customer.users.order_by("email", "pk"), per_page=PAGE_SIZE, param="users_page"
    )
    audit = paginate(
        request, selectors.audit_list(customer=customer), per_page=PAGE_SIZE, param="audit_page"
    )
    return render(
        request,
        "staff/customers/detail.html",
        {
            "budget": live.budget(customer),
            "customer": customer,
            "tokens": tokens,
            "users": users,
            "sync": selectors.customer_sync_state(customer=customer),
            "audit_events": selectors.audit_with_changes(audit),
            "audit_page": audit,
        },
    )


@staff_required
def customer_edit(request, pk):
    customer = get_customer_or_404(pk)
    form = CustomerDetailsForm(posted_data(request), instance=Customer.objects.get(pk=customer.pk))
    if request.method == "POST" and form.is_valid():
        try:
            services.customer_update(
                customer=customer,
                **{name: form.cleaned_data[name] for name in services.DETAIL_FIELDS},
                **audit_context(request),
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "Details saved.")
            return redirect("staff:customer_detail", pk=customer.pk)
    return render(request, "staff/customers/edit.html", {"customer": customer, "form": form})


@staff_required
def customer_limits(request, pk):
    customer = get_customer_or_404(pk)
    form = LimitsForm(request.POST or None, initial=LimitsForm.initial_for(customer))
    if request.method == "POST" and form.is_valid():
        try:
            services.customer_update_limits(
                customer=customer, **form.cleaned_data, **audit_context(request)
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "Limits saved; the proxy applies them within seconds.")
            return redirect("staff:customer_detail", pk=customer.pk)
    return render(request, "staff/customers/limits.html", {"customer": customer, "form": form})


STATUS_ACTIONS = {
    "suspend": (services.customer_suspend, "suspended: every token stops working"),
    "reactivate": (services.customer_reactivate, "active again"),
    "close": (services.customer_close, "closed and its tokens revoked"),
}
# What staff confirm before a status change that stops the customer's traffic.
STATUS_CONFIRM = {
    "suspend": (
        "Suspend",
        "Every token of {name} stops working at once, until the customer is reactivated.",
    ),
    "close": (
        "Close the account of",
        "Every token of {name} is revoked for good; a closed account cannot be reopened.",
    ),
}


@staff_required
@require_POST
def customer_status(request, pk):
    customer = get_customer_or_404(pk)
    name = request.POST.get("action", "")
    action = STATUS_ACTIONS.get(name)
    if action is None:
        messages.error(request, "Unknown action.")
    elif name in STATUS_CONFIRM and (
        page := confirm_first(
            request,
            title=f"{STATUS_CONFIRM[name][0]} {customer.name}?",
            message=STATUS_CONFIRM[name][1].format(name=customer.name),
            button=f"{name.capitalize()} {customer.name}",
            cancel_url=reverse("staff:customer_detail", args=[customer.pk]),
        )
    ):
        return page
    else:
        service, outcome = action
        try:
            service(customer=customer, **audit_context(request))
            messages.success(request, f"{customer.name} is {outcome}.")
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
    return redirect("staff:customer_detail", pk=customer.pk)


@staff_required
def customer_invite(request, pk):
    customer = get_customer_or_404(pk)
    form = InviteForm(posted_data(request))
    if request.method == "POST" and form.is_valid():
        try:
            user = customer_user_invite(
                customer=customer,
                email=form.cleaned_data["email"],
                full_name=form.cleaned_data["full_name"],
                **audit_context(request),
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, f"Invitation sent to {user.email}.")
            return redirect("staff:customer_detail", pk=customer.pk)
    return render(request, "staff/customers/invite.html", {"customer": customer, "form": form})


USER_ACTIONS = {
    "disable": (lambda user, **kw: customer_user_set_active(user=user, active=False, **kw)),
    "enable": (lambda user, **kw: customer_user_set_active(user=user, active=True, **kw)),
    "reinvite": (lambda user, **kw: customer_user_resend_invite(user=user, **kw)),
}


@staff_required
@require_POST
def customer_user_action(request, pk, user_id):
    customer = get_customer_or_404(pk)
    user = customer.users.filter(pk=user_id).first()
    if user is None:
        raise Http404("No such user.")
    name = request.POST.get("action", "")
    action = USER_ACTIONS.get(name)
    if action is None:
        messages.error(request, "Unknown action.")
    elif name == "disable" and (
        page := confirm_first(
            request,
            title=f"Disable the login of {user.email}?",
            message=f"{user.email} is signed out and can no longer sign in, until enabled again.",
            button="Disable login",
            cancel_url=reverse("staff:customer_detail", args=[customer.pk]),
        )
    ):
        return page
    else:
        try:
            action(user, **audit_context(request))
            messages.success(request, f"Done for {user.email}.")
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
    return redirect("staff:customer_detail", pk=customer.pk)


@staff_required
@require_POST
def customer_sync_now(request, pk):
    customer = get_customer_or_404(pk)
    report = outbox_deliver(customer_id=customer.pk, force=True)
    if report.failed:
        messages.error(request, f"Still failing: {report.errors[-1]}")
    else:
        messages.success(request, f"Delivered {report.delivered} pending changes.")
    return redirect("staff:customer_detail", pk=customer.pk)


@staff_required
@require_POST
def customer_bulk(request):
    form = BulkForm(request.POST)
    if not form.is_valid():
        for message in form.non_field_errors() or ["Choose an action."]:
            messages.error(request, message)
        return redirect("staff:customer_list")
    action = form.cleaned_data["action"]
    customers = selectors.customers_by_ids(ids=form.cleaned_data["ids"])
    limits_form = LimitsForm(request.POST if "confirm" in request.POST else None)
    confirmed = "confirm" in request.POST and (action != "set_limits" or limits_form.is_valid())
    if not confirmed:
        return render(
            request,
            "staff/customers/bulk_confirm.html",
            {
                "action": action,
                "action_label": dict(BulkForm.ACTIONS)[action],
                "customers": customers,
                "limits_form": limits_form,
            },
        )
    context = audit_context(request)
    try:
        if action == "suspend":
            count = customers_bulk_suspend(customers=customers, **context)
        elif action == "reactivate":
            count = customers_bulk_reactivate(customers=customers, **context)
        else:
            limits = {
                k: v for k, v in limits_form.cleaned_data.items() if k in _bulk_fields(request)
            }
            count = customers_bulk_set_limits(customers=customers, **limits, **context)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        noun = "customer" if count == 1 else "customers"
        messages.success(request, f"{dict(BulkForm.ACTIONS)[action]}: {count} {noun} changed.")
    return redirect("staff:customer_list")


def _bulk_fields(request) -> set[str]:
    """Bulk limit changes touch only the fields staff ticked ("apply_<field>")."""
    return {key.removeprefix("apply_") for key in request.POST if key.startswith("apply_")}
