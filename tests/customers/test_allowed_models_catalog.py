"""Allowed models come from the catalog (billing.catalog: the price book and the proxy's alias
map): an unknown id is refused by the service, so by the staff form, the API and the command,
with a message naming it and saying where the list is; the staff form offers the catalog."""

import re
from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from billing.catalog import catalog, find
from billing.models import ModelPrice
from customers import services, validators
from customers.forms import LimitsForm
from proxy import contract
from proxy import models as proxy_models

pytestmark = pytest.mark.django_db

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def test_the_catalog_holds_every_model_the_proxy_names_and_the_price_book_prices(db):
    models = {m.model_id: m for m in catalog()}
    assert set(proxy_models.KNOWN_IDS) <= set(models)
    assert set(ModelPrice.objects.values_list("model_id", flat=True)) <= set(models)
    assert set(proxy_models.EMBEDDING_MODELS) | set(proxy_models.SANDBOX_IDS) <= set(models)
    haiku = models[HAIKU]
    assert haiku.name == "Claude 3 Haiku" and set(haiku.aliases) == {"claude-3-haiku", "haiku"}
    assert haiku.priced and not haiku.free and not haiku.embeddings
    assert models["sandbox.echo-v1"].free and models["sandbox.embed-v1"].embeddings
    assert models[proxy_models.ALIASES["claude-2"]].priced  # every alias has a price
    assert all(m.priced for m in models.values())


@pytest.mark.parametrize(
    "entry",
    [HAIKU, "haiku", "claude-3-haiku", "us." + HAIKU, "eu." + HAIKU, "apac." + HAIKU,
     "titan-embed-v2", "cohere.embed-multilingual-v3", "sandbox.echo-v1", "sandbox-embed",
     "claude-2"],
)  # fmt: skip
def test_catalog_entries_are_accepted(db, entry):
    assert validators.allowed_models(entry) == [entry]
    assert find(entry) is not None


@pytest.mark.parametrize(
    "entry", ["gpt-99-imaginary", "claude-haiku", "us.gpt-99-imaginary", "anthropic.claude-9"]
)
def test_unknown_models_are_refused_naming_them_and_the_list(db, entry):
    with pytest.raises(ValidationError) as refused:
        validators.allowed_models(f"sandbox.echo-v1, {entry}")
    (message,) = refused.value.messages
    assert f"“{entry}”" in message and "sandbox.echo-v1" not in message
    assert "price book" in message and "/staff/billing/catalog/" in message
    assert "/api/v1/prices/" in message


def test_a_model_added_to_the_price_book_can_be_allowed(db):
    new = "anthropic.claude-3-5-haiku-20241022-v1:0"
    with pytest.raises(ValidationError):
        validators.allowed_models(new)
    ModelPrice.objects.create(
        model_id=new,
        effective_from=date(2025, 1, 1),
        input_per_1k=Decimal("0.0008"),
        output_per_1k=Decimal("0.004"),
        display_name="Claude 3.5 Haiku",
    )
    assert validators.allowed_models([new, "us." + new]) == [new, "us." + new]


def test_the_service_refuses_and_saves_nothing(ddb, customer):
    with pytest.raises(ValidationError, match="gpt-99-imaginary"):
        services.customer_update_limits(customer=customer, allowed_models=["gpt-99-imaginary"])
    customer.refresh_from_db()
    assert customer.allowed_models == []


def test_the_api_refuses_with_the_message(ddb, customer, staff_user):
    from rest_framework.test import APIClient

    from core.models import ApiKey
    from portal.api.keys import api_key_create

    key = api_key_create(name="ops", scope=ApiKey.Scope.READ_WRITE, created_by=staff_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
    url = f"/api/v1/customers/{customer.pk}/limits/"
    response = client.patch(url, {"allowed_models": ["gpt-99-imaginary"]}, format="json")
    assert response.status_code == 400
    (message,) = response.json()["error"]["fields"]["allowed_models"]
    assert "gpt-99-imaginary" in message and "price book" in message
    response = client.patch(url, {"allowed_models": ["us." + HAIKU, "nova-lite"]}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["allowed_models"] == ["us." + HAIKU, "nova-lite"]


def test_the_command_refuses_with_the_message(ddb, customer):
    args = ["customers", "update-limits", "--customer-id", str(customer.pk)]
    with pytest.raises(CommandError, match=r"gpt-99-imaginary.*price book"):
        call_command(*args, "--daily-limit", "10", "--allowed-models", "gpt-99-imaginary",
                     stdout=StringIO())  # fmt: skip
    call_command(*args, "--daily-limit", "10", "--allowed-models", "nova-lite,haiku",
                 stdout=StringIO())  # fmt: skip
    customer.refresh_from_db()
    assert customer.allowed_models == ["nova-lite", "haiku"]


def test_the_staff_form_offers_the_catalog(ddb, staff_client, customer):
    services.customer_update_limits(customer=customer, allowed_models=["us." + HAIKU, "nova-lite"])
    url = reverse("staff:customer_limits", args=[customer.pk])
    html = staff_client.get(url).content.decode()
    select = re.search(
        r'<select name="allowed_models"[^>]*multiple[^>]*>(.*?)</select>', html, re.S
    )
    assert select, "a multiple select of the catalog"
    options = dict(re.findall(r'<option value="([^"]+)"([^>]*)>', select.group(1)))
    for model in catalog():
        assert model.model_id in options
    assert "selected" in options["us." + HAIKU] and "selected" in options["nova-lite"]  # kept
    assert "selected" not in options[HAIKU]
    label = find(HAIKU).label  # name (from the price book), id and aliases
    assert label.endswith(f"{HAIKU} (claude-3-haiku, haiku)") and f">{label}</option>" in html


def test_the_staff_form_saves_several_picks_and_refuses_an_unknown_id(ddb, staff_client, customer):
    url = reverse("staff:customer_limits", args=[customer.pk])
    data = {"daily_request_limit": "", "monthly_token_quota": "", "rpm_limit": "",
            "ip_allowlist": "", "default_model_params": ""}  # fmt: skip
    response = staff_client.post(url, {**data, "allowed_models": [HAIKU, "sandbox.echo-v1"]})
    assert response.status_code == 302
    assert contract.get_customer(ddb, str(customer.pk)).allowed_models == [HAIKU, "sandbox.echo-v1"]
    refused = staff_client.post(url, {**data, "allowed_models": [HAIKU, "gpt-99-imaginary"]})
    assert refused.status_code == 200
    errors = refused.context["form"].errors["allowed_models"]
    assert "gpt-99-imaginary" in errors[0]
    assert 'value="gpt-99-imaginary" selected' in refused.content.decode()  # shown, to unpick
    response = staff_client.post(url, {**data, "allowed_models": []})
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.allowed_models == []  # none picked: every model


def test_the_form_reads_text_as_scripts_send_it(db):
    form = LimitsForm({"allowed_models": "sandbox.echo-v1\nnova-lite, haiku"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["allowed_models"] == ["sandbox.echo-v1", "nova-lite", "haiku"]
