"""Small helpers shared by the staff views."""

from django.http import Http404

from .models import Customer, Token


def get_customer_or_404(pk) -> Customer:
    customer = Customer.objects.filter(pk=pk).first()
    if customer is None:
        raise Http404("No such customer.")
    return customer


def get_token_or_404(customer: Customer, token_id) -> Token:
    token = customer.tokens.filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    return token
