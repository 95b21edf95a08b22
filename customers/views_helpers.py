"""Small helpers shared by the staff views."""

from axes.helpers import get_client_ip_address
from django.http import Http404

from .models import Customer, Token


def audit_context(request) -> dict:
    """What every service call from a view needs: who, from where."""
    return {"actor": request.user, "ip": get_client_ip_address(request), "source": "staff portal"}


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
