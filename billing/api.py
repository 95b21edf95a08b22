"""/api/v1/ resources of the billing app: price book, plans, each customer's credits, and
invoices with their lifecycle actions and PDF. Writes go through billing.services."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, renderers, status
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter
from rest_framework.response import Response

from core.api.base import (
    UUID_RE,
    CustomerFilterSet,
    SharedViewSet,
    StaffViewSet,
    customer_scope,
    schema_only,
)
from core.api.idempotency import IdempotentCreateMixin, run_idempotently
from customers.models import Customer

from . import selectors, services
from .credit_sync import credit_live
from .documents import invoice_pdf_bytes
from .models import Invoice, ModelPrice, PricingPlan
from .serializers import (
    CreditGrantCreateSerializer,
    CreditGrantSerializer,
    CreditNoteSerializer,
    CreditsSerializer,
    InvoiceDetailSerializer,
    InvoiceSerializer,
    LineAddSerializer,
    ModelPriceSerializer,
    PlanAssignmentSerializer,
    PlanAssignSerializer,
    PricingPlanSerializer,
    VoidResultSerializer,
    VoidSerializer,
)

CUSTOMER_PK = OpenApiParameter(
    "customer_pk", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The customer's id."
)


class PriceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, StaffViewSet):
    """The price book: one row per model and the day its price took effect (staff)."""

    serializer_class = ModelPriceSerializer
    queryset = ModelPrice.objects.all()
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    filterset_fields = ["model_id", "effective_from"]
    ordering_fields = ["model_id", "effective_from"]
    ordering = ["model_id"]


class PlanViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, StaffViewSet):
    """Pricing plans (edited on the staff pages); assign one to a customer from a date."""

    serializer_class = PricingPlanSerializer
    queryset = PricingPlan.objects.all()
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    filterset_fields = ["kind", "is_active", "code"]
    ordering_fields = ["name", "code"]
    ordering = ["name"]

    @extend_schema(request=PlanAssignSerializer, responses={201: PlanAssignmentSerializer})
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        """Put a customer on this plan from `effective_from` (history is kept)."""
        plan = self.get_object()
        return run_idempotently(request, lambda: self._assign(request, plan))

    def _assign(self, request, plan):
        serializer = PlanAssignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        customer = get_object_or_404(Customer, pk=serializer.validated_data["customer"])
        assignment = services.plan_assign(
            customer=customer,
            plan=plan,
            effective_from=serializer.validated_data["effective_from"],
            by=request.user,
        )
        return Response(PlanAssignmentSerializer(assignment).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[CUSTOMER_PK])
class CreditViewSet(IdempotentCreateMixin, SharedViewSet):
    """A customer's prepaid wallet: balance and grants; staff grant credit."""

    serializer_class = CreditGrantSerializer
    answers_one_object = True
    pagination_class = None
    filter_backends = []

    def _customer(self) -> Customer:
        customers = Customer.objects.all()
        scope = customer_scope(self.request)
        if scope is not None:
            customers = customers.filter(pk=scope)
        return get_object_or_404(customers, pk=self.kwargs["customer_pk"])

    @extend_schema(responses=CreditsSerializer)
    def list(self, request, customer_pk=None):
        customer = self._customer()
        live = credit_live(customer)
        body = {
            "customer": customer.pk,
            "balance": selectors.credit_balance(customer.pk) if live is None else live.wallet,
            "prepaid": live is not None,
            "available_now": live.available if live else None,
            "usage_not_invoiced": live.not_invoiced if live else None,
            "live": bool(live and live.is_live),
            "grants": customer.credit_grants.all(),
        }
        return Response(CreditsSerializer(body).data)

    @extend_schema(request=CreditGrantCreateSerializer, responses={201: CreditGrantSerializer})
    def create(self, request, *args, **kwargs):
        """Add prepaid credit (a purchase or a promotional grant)."""
        return self.idempotently(request, lambda: self._grant(request))

    def _grant(self, request):
        customer = self._customer()
        serializer = CreditGrantCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        grant = services.credit_grant(
            customer=customer, by=request.user, **serializer.validated_data
        )
        return Response(CreditGrantSerializer(grant).data, status=status.HTTP_201_CREATED)


class PdfRenderer(renderers.BaseRenderer):
    """Lets `Accept: application/pdf` through negotiation; errors render as JSON text."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return renderers.JSONRenderer().render(data)


class InvoiceFilter(CustomerFilterSet):
    class Meta:
        model = Invoice
        fields = ["customer", "status", "kind", "period_start", "number"]


class InvoiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SharedViewSet):
    """Invoices and credit notes: draft -> issued -> paid | void. Customers see their own,
    never drafts."""

    lookup_value_regex = UUID_RE
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    filterset_class = InvoiceFilter
    ordering_fields = ["created_at", "period_start", "issued_at", "total"]
    ordering = ["-created_at"]

    def get_queryset(self):
        if schema_only(self):
            return Invoice.objects.none()
        scope = customer_scope(self.request)
        if scope is None:
            return selectors.invoice_list_for_staff()
        return selectors.invoices_for_customer(Customer(pk=scope)).prefetch_related("payments")

    def get_serializer_class(self):
        return InvoiceSerializer if self.action == "list" else InvoiceDetailSerializer

    def _detail(self, invoice):
        return Response(InvoiceDetailSerializer(invoice).data)

    @extend_schema(request=None, responses=InvoiceDetailSerializer)
    @action(detail=True, methods=["post"])
    def issue(self, request, pk=None):
        """Freeze a draft: apply credits, compute tax and total, take the next number, email
        the PDF."""
        return self._detail(services.invoice_issue(invoice=self.get_object()))

    @extend_schema(request=None, responses=InvoiceDetailSerializer)
    @action(detail=True, methods=["post"], url_path="mark-paid")
    def mark_paid(self, request, pk=None):
        """issued -> paid by hand (a payment received outside Stripe); audited."""
        invoice = services.invoice_mark_paid(
            invoice=self.get_object(), by=request.user, source="api"
        )
        return self._detail(invoice)

    @extend_schema(request=LineAddSerializer, responses={201: InvoiceDetailSerializer})
    @action(detail=True, methods=["post"])
    def lines(self, request, pk=None):
        """Add a manual line (a fee, or a discount as a negative amount) to a draft."""
        invoice = self.get_object()

        def run():
            serializer = LineAddSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            services.invoice_line_add(invoice=invoice, **serializer.validated_data)
            return Response(InvoiceDetailSerializer(self.get_object()).data, status=201)

        return run_idempotently(request, run)

    @extend_schema(request=CreditNoteSerializer, responses={201: InvoiceDetailSerializer})
    @action(detail=True, methods=["post"], url_path="credit-note")
    def credit_note(self, request, pk=None):
        """Credit part of an issued or paid invoice: a credit note (own number) whose value
        goes to the customer's prepaid credit. The answer is the credit note."""
        invoice = self.get_object()

        def run():
            serializer = CreditNoteSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            note = services.credit_note_issue(invoice=invoice, **serializer.validated_data)
            return Response(InvoiceDetailSerializer(note).data, status=201)

        return run_idempotently(request, run)

    @extend_schema(request=VoidSerializer, responses=VoidResultSerializer)
    @action(detail=True, methods=["post"])
    def void(self, request, pk=None):
        """Void an issued invoice (credits return to the wallet); `reissue` answers with a
        corrected draft copying its lines."""
        invoice = self.get_object()
        serializer = VoidSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        draft = services.invoice_void(invoice=invoice, **serializer.validated_data)
        invoice.refresh_from_db()
        return Response(VoidResultSerializer({"voided": invoice, "reissued_draft": draft}).data)

    @extend_schema(
        responses={
            (200, "application/pdf"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The invoice as a PDF document."
            )
        }
    )
    @action(detail=True, renderer_classes=[renderers.JSONRenderer, PdfRenderer])
    def pdf(self, request, pk=None):
        invoice = self.get_object()
        response = HttpResponse(invoice_pdf_bytes(invoice), content_type="application/pdf")
        name = invoice.number or f"draft-{invoice.pk}"
        response["Content-Disposition"] = f'attachment; filename="{name}.pdf"'
        return response


def register(router):
    router.register("prices", PriceViewSet, basename="price")
    router.register("plans", PlanViewSet, basename="plan")
    router.register(rf"customers/(?P<customer_pk>{UUID_RE})/credits", CreditViewSet, "credit")
    router.register("invoices", InvoiceViewSet, basename="invoice")
