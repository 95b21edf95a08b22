"""/api/v1/invoices/: list, detail, issue, void, mark paid, PDF; customers see their own."""

from datetime import date
from decimal import Decimal as D

import pytest

from billing.models import Invoice
from billing.services import invoice_issue, invoice_line_add

from .conftest import error_of

pytestmark = pytest.mark.django_db

URL = "/api/v1/invoices/"


def _draft(customer, month=10):
    invoice = Invoice.objects.create(
        customer=customer, period_start=date(2026, month, 1), period_end=date(2026, month, 28)
    )
    invoice_line_add(invoice=invoice, description="Model A usage", amount=D("80.00"))
    return invoice


@pytest.fixture
def draft(customer):
    return _draft(customer)


def test_list_and_detail(ro, draft, other_customer):
    _draft(other_customer)
    body = ro.get(URL).json()
    assert len(body["results"]) == 2
    assert "lines" not in body["results"][0]
    mine = ro.get(URL, {"customer": str(draft.customer_id), "status": "draft"}).json()
    assert [i["id"] for i in mine["results"]] == [str(draft.pk)]
    detail = ro.get(f"{URL}{draft.pk}/").json()
    assert detail["subtotal"] == "80.00"
    assert detail["lines"][0]["description"] == "Model A usage"
    assert ro.get(URL, {"status": "nope"}).status_code == 400


def test_issue_mark_paid(rw, draft, django_capture_on_commit_callbacks):
    response = rw.post(f"{URL}{draft.pk}/issue/")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "issued" and response.json()["number"]
    again = rw.post(f"{URL}{draft.pk}/issue/")
    assert again.status_code == 409
    assert error_of(again)["type"] == "invalid_state"
    paid = rw.post(f"{URL}{draft.pk}/mark-paid/")
    assert paid.status_code == 200 and paid.json()["status"] == "paid"


def test_void_with_reissue(rw, draft):
    invoice_issue(invoice=draft)
    missing = rw.post(f"{URL}{draft.pk}/void/", {})
    assert missing.status_code == 400 and "reason" in error_of(missing)["fields"]
    response = rw.post(f"{URL}{draft.pk}/void/", {"reason": "wrong rate", "reissue": True})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["voided"]["status"] == "void"
    assert body["reissued_draft"]["status"] == "draft"
    assert body["reissued_draft"]["replaces"] == str(draft.pk)


def test_void_a_draft_is_409(rw, draft):
    response = rw.post(f"{URL}{draft.pk}/void/", {"reason": "x"})
    assert response.status_code == 409


def test_pdf(ro, draft):
    response = ro.get(f"{URL}{draft.pk}/pdf/", HTTP_ACCEPT="application/pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")


def test_read_only_key_cannot_change_invoices(ro, draft):
    for action in ("issue", "mark-paid", "void"):
        assert ro.post(f"{URL}{draft.pk}/{action}/", {"reason": "x"}).status_code == 403
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_customer_sees_own_issued_invoices_only(customer_api, draft, customer, other_customer):
    hidden_draft = _draft(customer, month=9)
    invoice_issue(invoice=draft)
    theirs = _draft(other_customer)
    invoice_issue(invoice=theirs)
    ids = [i["id"] for i in customer_api.get(URL).json()["results"]]
    assert ids == [str(draft.pk)]
    assert customer_api.get(f"{URL}{hidden_draft.pk}/").status_code == 404
    assert customer_api.get(f"{URL}{theirs.pk}/").status_code == 404
    assert customer_api.get(f"{URL}{theirs.pk}/pdf/").status_code == 404
    assert customer_api.get(f"{URL}{draft.pk}/pdf/").status_code == 200
    assert customer_api.post(f"{URL}{draft.pk}/mark-paid/").status_code == 403


def test_anonymous_is_401(anon, draft):
    assert anon.get(URL).status_code == 401
    assert anon.get(f"{URL}{draft.pk}/pdf/").status_code == 401


def test_manual_line_and_credit_note(rw, ro, draft):
    response = rw.post(f"{URL}{draft.pk}/lines/", {"description": "Discount", "amount": "-5.00"})
    assert response.status_code == 201, response.json()
    assert response.json()["subtotal"] == "75.00"
    assert (
        rw.post(f"{URL}{draft.pk}/lines/", {"description": " ", "amount": "1"}).status_code == 400
    )
    early = rw.post(f"{URL}{draft.pk}/credit-note/", {"amount": "1.00", "reason": "x"})
    assert early.status_code == 409
    invoice_issue(invoice=draft)
    assert (
        rw.post(f"{URL}{draft.pk}/lines/", {"description": "x", "amount": "1"}).status_code == 409
    )
    too_much = rw.post(f"{URL}{draft.pk}/credit-note/", {"amount": "500.00", "reason": "x"})
    assert too_much.status_code == 400
    assert (
        ro.post(f"{URL}{draft.pk}/credit-note/", {"amount": "1.00", "reason": "x"}).status_code
        == 403
    )
    body = {"amount": "10.00", "reason": "outage"}
    note = rw.post(f"{URL}{draft.pk}/credit-note/", body, HTTP_IDEMPOTENCY_KEY="cn-1")
    assert note.status_code == 201, note.json()
    retry = rw.post(f"{URL}{draft.pk}/credit-note/", body, HTTP_IDEMPOTENCY_KEY="cn-1")
    assert retry.json()["id"] == note.json()["id"] and retry["Idempotent-Replayed"] == "true"
    assert Invoice.objects.filter(kind="credit_note").count() == 1
    assert note.json()["kind"] == "credit_note"
    assert note.json()["credited_invoice"] == str(draft.pk)
