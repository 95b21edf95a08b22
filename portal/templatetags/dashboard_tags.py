"""Chart and alert snippets for pages other apps render (the customer usage page, homes)."""

from django import template

from usage import selectors as usage_selectors

from ..dashboard import selectors

register = template.Library()


@register.inclusion_tag("dashboard/_customer_usage_charts.html")
def customer_usage_charts(customer, start, end):
    return {
        "charts": selectors.customer_usage_charts(customer_id=customer.pk, start=start, end=end)
    }


@register.inclusion_tag("dashboard/_recent_alerts.html")
def customer_recent_alerts(customer, limit=5):
    return {"alerts": list(usage_selectors.alert_list(customer_id=customer.pk)[:limit])}
