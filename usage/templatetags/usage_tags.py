"""Filters for the usage pages: amounts of money as people read them. They only format what
the view passed; none reads the database."""

from django import template

from customers.money import micros_text, money_text

register = template.Library()


@register.filter
def money(amount):
    """An amount of the portal's currency as people read it: "1,234.50 USD" (to the cent, half
    up); empty for None."""
    return money_text(amount)


@register.filter
def micros_money(micros):
    """Micro-units of the currency (an alert's value or limit) as "40.00 USD"."""
    return micros_text(micros) if micros is not None else ""
