"""Customer billing pages: only their own invoices (404 otherwise), never drafts."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.urls import reverse

from billing.models import Invoice
from billing.services import credit_grant, invoice_issue, invoice_line_add


def issued_invoice(customer, month=10, amount="12.34"):
    invoice = Invoice.objects.create(
        customer=customer, period_start=date(2026, month, 1), period_end=date(2026, month, 28)
    )
    invoice_line_add(invoice=invoice, description="Claude 3 Haiku usage", amount=D(amount))
    return invoice_issue(invoice=invoice)


@pytest.fixture
def invoices(customer, other_customer):
    mine = issued_invoice(customer)
    theirs = issued_invoice(other_customer)
    draft = Invoice.objects.create(
        customer=customer, period_start=date(2026, 11, 1), period_end=date(2026, 11, 30)
    )
    return mine, theirs, draft


def test_list_shows_only_own_issued_invoices(customer_client, invoices):
    mine, theirs, draft = invoices
    response = customer_client.get(reverse("customer:invoice_list"))
    assert response.status_code == 200
    body = response.content.decode()
    assert mine.number in body
    assert theirs.number not in body
    assert reverse("customer:invoice_detail", args=[draft.pk]) not in body


@pytest.mark.parametrize("name", ["invoice_detail", "invoice_pdf", "invoice_csv"])
def test_another_customers_invoice_is_404(customer_client, invoices, name):
    mine, theirs, draft = invoices
    assert customer_client.get(reverse(f"customer:{name}", args=[theirs.pk])).status_code == 404
    assert customer_client.get(reverse(f"customer:{name}", args=[draft.pk])).status_code == 404
    assert customer_client.get(reverse(f"customer:{name}", args=[mine.pk])).status_code == 200


def test_detail_pdf_and_csv(customer_client, invoices):
    mine = invoices[0]
    detail = customer_client.get(reverse("customer:invoice_detail", args=[mine.pk]))
    assert "Claude 3 Haiku usage" in detail.content.decode()
    pdf = customer_client.get(reverse("customer:invoice_pdf", args=[mine.pk]))
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert f'filename="{mine.number}.pdf"' in pdf["Content-Disposition"]
    csv_text = customer_client.get(reverse("customer:invoice_csv", args=[mine.pk])).content.decode()
    assert "Claude 3 Haiku usage" in csv_text and "12.34" in csv_text


def test_list_is_paginated(customer_client, customer):
    for month in range(1, 13):
        issued_invoice(customer, month=month)
    for year in (2024, 2025):
        for month in range(1, 13):
            invoice = Invoice.objects.create(
                customer=customer,
                period_start=date(year, month, 1),
                period_end=date(year, month, 28),
            )
            invoice_issue(invoice=invoice)
    page1 = customer_client.get(reverse("customer:invoice_list"))
    assert page1.context["page"].paginator.num_pages == 2
    assert customer_client.get(reverse("customer:invoice_list") + "?page=2").status_code == 200
    assert customer_client.get(reverse("customer:invoice_list") + "?page=zzz").status_code == 200


def test_overview_shows_balance_and_cost(customer_client, customer, price_book, add_usage):
    credit_grant(customer=customer, amount=D("25.00"))
    response = customer_client.get(reverse("customer:billing_overview"))
    assert response.status_code == 200
    assert "25.00" in response.content.decode()
    assert "Month-end forecast" in response.content.decode()


def test_customer_home_has_cost_snippet(customer_client):
    response = customer_client.get(reverse("customer:home"))
    assert response.status_code == 200
    assert "Cost so far" in response.content.decode()


@pytest.mark.parametrize("name", ["billing_overview", "invoice_list"])
def test_staff_and_anonymous_cannot_use_customer_pages(client, staff_client, name):
    url = reverse(f"customer:{name}")
    assert staff_client.get(url).status_code == 403
    client.logout()
    assert client.get(url).status_code == 302
