"""Staff pages of the price book: each model's price in force and scheduled changes, and the
form that schedules a change (asked for confirmation first, audited, sent to the proxy)."""

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse

from core.access import staff_required
from core.web import confirm_first, paginate, posted_data

from . import services
from .price_book import AWS_PRICING_URL, from_aws, price_book_by_model, utc_today
from .price_forms import ModelPriceForm
from .price_units import per_1k_to_per_million, price_text
from .pricing import PricingError


@staff_required
def billing_prices(request):
    today = utc_today()
    page = paginate(request, price_book_by_model(today=today), per_page=50)
    return render(
        request,
        "billing/staff_prices.html",
        {
            "page": page,
            "today": today,
            "currency": settings.BILLING_CURRENCY,
            "aws_pricing_url": AWS_PRICING_URL,
            "not_from_aws": {
                row.pk
                for model in page.object_list
                for row in [model.current, *model.scheduled]
                if row is not None and not from_aws(row)
            },
        },
    )


def _summary(fields: dict) -> list[str]:
    """The change as the confirmation page lists it, per 1M tokens as it was typed."""
    currency = settings.BILLING_CURRENCY

    def per_1m(name: str) -> str:
        value = fields[name]
        if value is None:
            return "as input tokens"
        return f"{price_text(per_1k_to_per_million(value))} {currency} per 1M tokens"

    items = [
        f"Model: {fields['display_name'] or fields['model_id']} ({fields['model_id']})",
        f"Effective from: {fields['effective_from']:%Y-%m-%d} (00:00 UTC)",
        f"Input: {per_1m('input_per_1k')}",
        f"Output: {per_1m('output_per_1k')}",
        f"Cache read: {per_1m('cache_read_per_1k')}",
        f"Cache write: {per_1m('cache_write_per_1k')}",
    ]
    if fields["per_request"]:
        items.append(f"Per request: {price_text(fields['per_request'])} {currency}")
    if fields["source_url"]:
        items.append(f"Source: {fields['source_url']}")
    return items


@staff_required
def billing_price_new(request):
    initial = (
        {} if request.method == "POST" else ModelPriceForm.initial_for(request.GET.get("model"))
    )
    form = ModelPriceForm(posted_data(request), initial=initial)
    if request.method == "POST" and form.is_valid():
        fields = form.service_fields()
        try:
            services.model_price_schedule(check_only=True, **fields)
        except PricingError as exc:
            form.add_error(None, str(exc))
        else:
            if page := confirm_first(
                request,
                title=f"Schedule a new price of {fields['model_id']}?",
                message="From that day on, usage of this model is invoiced at this price and the "
                "proxy counts it against budgets and prepaid credit. A price change cannot be "
                "edited afterwards: a correction is another change.",
                button="Schedule price",
                cancel_url=reverse("staff:billing_prices"),
                items=_summary(fields),
                danger=False,
            ):
                return page
            try:
                row = services.model_price_schedule(
                    by=request.user, ip=get_client_ip_address(request), **fields
                )
            except PricingError as exc:  # e.g. someone scheduled that day meanwhile
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request,
                    f"New price of {row.display_name or row.model_id} from "
                    f"{row.effective_from:%Y-%m-%d}; it is on its way to the proxy.",
                )
                return redirect("staff:billing_prices")
    return render(
        request,
        "billing/staff_price_form.html",
        {"form": form, "aws_pricing_url": AWS_PRICING_URL},
    )
