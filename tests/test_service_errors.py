"""A service's refusal (core/errors.py) is answered once for the API and once for pages, with
the status it carries and its message: never a 500, whichever app raised it."""

import pytest
from django.test import RequestFactory
from rest_framework.test import APIRequestFactory

from billing.models import InvoiceImmutable
from billing.pricing import PricingError
from billing.services import InvoiceStateError
from core.api.errors import api_exception_handler
from core.errors import ServiceError, ServiceErrorMiddleware, StateConflict


class PaymentRequired(ServiceError):
    status = 402
    code = "payment_required"


def _api_answer(exc):
    request = APIRequestFactory().post("/api/v1/anything/")
    response = api_exception_handler(exc, {"request": request})
    return response.status_code, response.data["error"]


def test_every_billing_refusal_is_a_service_error():
    assert issubclass(PricingError, ServiceError) and issubclass(PricingError, ValueError)
    assert issubclass(InvoiceStateError, StateConflict)
    assert issubclass(InvoiceImmutable, StateConflict)


@pytest.mark.parametrize(
    ("exc", "status", "type_", "code"),
    [
        (PricingError("A tier bound must be a whole number."), 400, "validation_error", None),
        (InvoiceStateError("Only a draft can be issued."), 409, "invalid_state", None),
        (InvoiceImmutable("Invoice INV-1 is issued."), 409, "invalid_state", None),
        (PaymentRequired("Top up first."), 402, "invalid_request", "payment_required"),
    ],
)
def test_the_api_answers_with_the_status_the_error_carries(exc, status, type_, code):
    got_status, error = _api_answer(exc)
    assert got_status == status
    assert error["type"] == type_
    assert str(exc) in error["message"]
    if code:
        assert error["code"] == code


def test_a_page_answers_with_the_error_page_and_the_message(db):
    request = RequestFactory().post("/staff/billing/invoices/1/issue/")
    request.user = None
    middleware = ServiceErrorMiddleware(lambda r: None)
    response = middleware.process_exception(request, InvoiceStateError("Only a draft <b>can</b>."))
    assert response.status_code == 409
    body = response.content.decode()
    assert "This cannot be done now" in body
    assert "Only a draft &lt;b&gt;can&lt;/b&gt;." in body  # the message, escaped
    response = middleware.process_exception(request, PaymentRequired("Top up first."))
    assert response.status_code == 402 and "Top up first." in response.content.decode()


def test_the_api_and_other_errors_are_left_to_their_own_handling():
    middleware = ServiceErrorMiddleware(lambda r: None)
    api = RequestFactory().post("/api/v1/invoices/1/issue/")
    assert middleware.process_exception(api, InvoiceStateError("x")) is None
    page = RequestFactory().get("/staff/")
    assert middleware.process_exception(page, KeyError("a bug")) is None
