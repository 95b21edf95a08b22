"""Small helpers shared by the staff views."""

from axes.helpers import get_client_ip_address
from django.http import Http404

from .models import Customer, Token

ISSUED_SESSION_KEY = "customers:issued-token"


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


def remember_issued(request, issued, *, onboarded_user_email: str = "") -> None:
    """Keep the plaintext in the session for exactly one display (see views_tokens.token_issued)."""
    request.session[ISSUED_SESSION_KEY] = {
        "token_id": str(issued.token.pk),
        "customer_id": str(issued.token.customer_id),
        "plaintext": issued.plaintext,
        "invited": onboarded_user_email,
    }


def pop_issued(request) -> dict | None:
    return request.session.pop(ISSUED_SESSION_KEY, None)
