"""How pages show models: the catalog's display name, with the model id on hover."""

from django import template
from django.utils.html import format_html

from ..model_names import display_name

register = template.Library()


@register.filter
def model_name(model_id):
    """`<span title="anthropic.claude-3-haiku-…">Claude 3 Haiku</span>`; an id the catalog does
    not know is shown as it is."""
    if model_id in (None, ""):
        return ""
    name = display_name(model_id)
    return format_html('<span class="model" title="{}">{}</span>', model_id, name)
