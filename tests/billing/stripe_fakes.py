"""Stripe for the tests: the real `stripe` library, its HTTP transport replaced by a stub that
records each request and answers with Stripe's object shapes (a checkout.session, an error), and
webhook bodies signed with Stripe's scheme (`t=<ts>,v1=<HMAC-SHA256 of "ts.body">`, made by the
library's own WebhookSignature). Nothing leaves the process; the API base is 127.0.0.1."""

import itertools
import json
import time
from datetime import date
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import stripe

from billing.models import Invoice, Payment
from billing.services import invoice_issue, invoice_line_add

WEBHOOK_SECRET = "whsec_test_portal_signing_secret"
API_BASE = "http://127.0.0.1:12111"
_ids = itertools.count(1)


def stripe_id(prefix: str) -> str:
    return f"{prefix}_test_{next(_ids):06d}{int(time.time() * 1000) % 100000:05d}"


class StripeStub(stripe.HTTPClient):
    """A Stripe API on no network: Checkout Sessions created, read and expired in memory,
    replayed by idempotency key as Stripe does (the same key with other parameters is an
    idempotency error)."""

    name = "stub"

    def __init__(self):
        super().__init__()
        self.requests: list[dict] = []
        self.sessions: dict[str, dict] = {}
        self._by_key: dict[str, tuple[list, str]] = {}
        self.fail_with: tuple[int, dict] | None = None
        self.expires_in = 24 * 3600

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        assert url.startswith(API_BASE), url  # never another address
        parts = urlsplit(url)
        params = parse_qsl(post_data or parts.query or "", keep_blank_values=True)
        key = (headers or {}).get("Idempotency-Key", "")
        self.requests.append(
            {"method": method, "path": parts.path, "params": dict(params), "key": key}
        )
        if self.fail_with:
            status, error = self.fail_with
            return json.dumps({"error": error}), status, {"Stripe-Should-Retry": "false"}
        if method == "post" and key and key in self._by_key:
            before, body = self._by_key[key]
            if before != params:
                return self._error(
                    400, "idempotency_error", "Keys can only be reused with the same parameters."
                )
            return body, 200, {"Idempotent-Replayed": "true", "Request-Id": "req_stub"}
        status, body = self._route(method, parts.path, dict(params))
        text = json.dumps(body)
        if method == "post" and key and status == 200:
            self._by_key[key] = (params, text)
        return text, status, {"Request-Id": "req_stub"}

    def close(self):
        pass

    def _error(self, status, kind, message):
        return json.dumps({"error": {"type": kind, "message": message}}), status, {}

    def _route(self, method, path, params):
        if method == "post" and path == "/v1/checkout/sessions":
            return 200, self._session_create(params)
        session_id = path.removeprefix("/v1/checkout/sessions/").removesuffix("/expire")
        session = self.sessions.get(session_id)
        if session is None:
            return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}}
        if method == "post" and path.endswith("/expire"):
            if session["status"] != "open":
                return 400, {
                    "error": {
                        "type": "invalid_request_error",
                        "message": f'Only Checkout Sessions with a status in ["open"] can be '
                        f'expired. This Checkout Session has a status of "{session["status"]}".',
                    }
                }
            session["status"] = "expired"
            return 200, session
        return 200, session

    def _session_create(self, p):
        session_id = stripe_id("cs")
        metadata = {k[9:-1]: v for k, v in p.items() if k.startswith("metadata[")}
        unit = int(p["line_items[0][price_data][unit_amount]"])
        quantity = int(p["line_items[0][quantity]"])
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": unit * quantity,
            "amount_total": unit * quantity,
            "cancel_url": p.get("cancel_url"),
            "client_reference_id": p.get("client_reference_id"),
            "created": int(time.time()),
            "currency": p["line_items[0][price_data][currency]"],
            "customer": None,
            "customer_email": p.get("customer_email"),
            "expires_at": int(time.time()) + self.expires_in,
            "livemode": False,
            "metadata": metadata,
            "mode": p["mode"],
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": p.get("success_url"),
            "url": f"https://checkout.stripe.com/c/pay/{session_id}#fidkdWxOYHwnPyd1blpxYHZxWjA0",
        }
        self.sessions[session_id] = session
        return session

    def created_sessions(self) -> list[dict]:
        return [r for r in self.requests if r["path"] == "/v1/checkout/sessions"]


def stripe_configured(settings):
    """Stripe configured (test keys), its transport stubbed; yields the stub. Each test module
    makes it its `stripe_on` fixture."""
    settings.STRIPE_SECRET_KEY = "sk_test_portal_0123456789"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = API_BASE
    settings.PORTAL_BASE_URL = "https://portal.example.test"
    settings.BILLING_CURRENCY = "USD"
    stub = StripeStub()
    previous = stripe.default_http_client
    stripe.default_http_client = stub
    try:
        yield stub
    finally:
        stripe.default_http_client = previous


def issued_invoice(customer, amount="120.50", month=10) -> Invoice:
    draft = Invoice.objects.create(
        customer=customer,
        period_start=date(2026, month, 1),
        period_end=date(2026, month, 28),
        currency="USD",
    )
    invoice_line_add(invoice=draft, description="Model usage", amount=Decimal(amount))
    return invoice_issue(invoice=draft, today=date(2026, month + 1, 2))


# --- Webhook events -----------------------------------------------------------------------


def event(kind: str, obj, *, event_id: str = "", livemode: bool = False, created=None) -> dict:
    return {
        "id": event_id or stripe_id("evt"),
        "object": "event",
        "api_version": stripe.api_version,
        "created": created or int(time.time()),
        "data": {"object": obj},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def completed_session(
    stub: StripeStub, payment: Payment, *, intent: str = "", paid: str = "paid", **changes
) -> dict:
    """The session Stripe sends in checkout.session.completed, once the customer paid."""
    session = dict(stub.sessions[payment.checkout_session_id])
    session |= {
        "status": "complete",
        "payment_status": paid,
        "payment_intent": intent or stripe_id("pi"),
    }
    return session | changes


def charge(intent: str, *, amount: int, refunded: int, currency="usd", **changes) -> dict:
    return {
        "id": changes.pop("charge_id", None) or stripe_id("ch"),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": refunded,
        "captured": True,
        "currency": currency,
        "metadata": {},
        "paid": True,
        "payment_intent": intent,
        "refunded": type(refunded) is int and refunded >= amount,
        "status": "succeeded",
        **changes,
    }


def dispute(intent: str, charge_id: str, *, amount: int, status: str, **changes) -> dict:
    return {
        "id": changes.pop("dispute_id", None) or stripe_id("dp"),
        "object": "dispute",
        "amount": amount,
        "charge": charge_id,
        "currency": "usd",
        "metadata": {},
        "payment_intent": intent,
        "reason": "fraudulent",
        "status": status,
        **changes,
    }


def signature(payload: str, *, secret: str = WEBHOOK_SECRET, timestamp=None) -> str:
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)


def deliver(client, body, *, header=None, secret: str = WEBHOOK_SECRET, timestamp=None):
    """POST an event (a dict, or the raw body text) to the webhook, signed unless `header`."""
    payload = body if isinstance(body, str) else json.dumps(body)
    if header is None:
        header = signature(payload, secret=secret, timestamp=timestamp)
    extra = {"HTTP_STRIPE_SIGNATURE": header} if header else {}
    return client.post("/stripe/webhook/", data=payload, content_type="application/json", **extra)
