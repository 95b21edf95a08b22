"""Pages that show more than one app's data, composed here on the top floor.

The customer's account page lists the account's users (customers) and edits its alert and
summary preferences (usage): neither app imports the other that way, so the page is put
together here. Its URL keeps its name in the "customer" namespace (portal/urls.py).
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from core.access import customer_required
from core.web import audit_context, paginate
from customers.forms import InviteForm
from customers.onboarding import customer_user_invite
from usage.forms import AlertSettingsForm
from usage.selectors import usage_settings_for
from usage.services import usage_settings_update

PAGE_SIZE = 50


@customer_required
def customer_account(request):
    customer = request.customer
    invite_form = InviteForm(prefix="invite")
    settings_form = AlertSettingsForm(instance=usage_settings_for(customer=customer))
    status = 200
    if request.method == "POST" and request.POST.get("action") == "invite":
        invite_form = InviteForm(request.POST, prefix="invite")
        if invite_form.is_valid():
            try:
                user = customer_user_invite(
                    customer=customer,
                    email=invite_form.cleaned_data["email"],
                    full_name=invite_form.cleaned_data["full_name"],
                    **audit_context(request),
                )
            except ValidationError as error:
                for message in error.messages:
                    invite_form.add_error(None, message)
            else:
                messages.success(request, f"Invitation sent to {user.email}.")
                return redirect("customer:customer_account")
        status = 400
    elif request.method == "POST" and request.POST.get("action") == "alerts":
        settings_form = AlertSettingsForm(
            request.POST, instance=usage_settings_for(customer=customer)
        )
        if settings_form.is_valid():
            usage_settings_update(customer=customer, **settings_form.changes())
            messages.success(request, "Your alert and email preferences are saved.")
            return redirect("customer:customer_account")
        status = 400
    context = {
        "customer": customer,
        "users": paginate(request, customer.users.order_by("email", "pk"), per_page=PAGE_SIZE),
        "invite_form": invite_form,
        "settings_form": settings_form,
    }
    return render(request, "customer/account.html", context, status=status)
