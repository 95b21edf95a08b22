"""/api/v1/ resources of the customers app: customers (with limits and status actions), their
tokens and users, and the audit log. Every write goes through the same services as the pages."""

from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter
from rest_framework.response import Response

from core.api.base import (
    UUID_RE,
    CustomerFilterSet,
    SharedViewSet,
    StaffViewSet,
    UtcDateTimeFilter,
    customer_scope,
    schema_only,
)
from core.api.idempotency import IdempotentCreateMixin
from core.models import User
from core.web import audit_context

from . import live, onboarding, selectors, services
from .models import AuditEvent, Customer, Token
from .serializers import (
    AuditEventSerializer,
    CustomerForCustomerSerializer,
    CustomerListQuery,
    CustomerSerializer,
    CustomerUserSerializer,
    InviteSerializer,
    IssuedTokenSerializer,
    LimitsSerializer,
    TokenCreateSerializer,
    TokenLimitsSerializer,
    TokenRotateSerializer,
    TokenSerializer,
)

CUSTOMER_PK = OpenApiParameter(
    "customer_pk", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The customer's id."
)
NESTED = rf"customers/(?P<customer_pk>{UUID_RE})"


class CustomerViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    SharedViewSet,
):
    """Customers with their limits. Customer users see only their own account, read-only."""

    serializer_class = CustomerSerializer
    lookup_value_regex = UUID_RE
    filter_backends = [OrderingFilter]
    ordering_fields = ["name", "created_at", "status", "contact_email"]
    ordering = ["name"]

    def get_serializer_class(self):
        if not schema_only(self) and customer_scope(self.request) is not None:
            return CustomerForCustomerSerializer
        return CustomerSerializer

    def get_queryset(self):
        if self.action == "list":
            query = CustomerListQuery(data=self.request.query_params)
            query.is_valid(raise_exception=True)
            customers = selectors.customer_list(**query.validated_data)
        else:
            customers = selectors.with_sync_state(Customer.objects.all())
        return self.scoped(customers, "pk")

    @extend_schema(parameters=[CustomerListQuery])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def perform_create(self, serializer):
        details, limits = serializer.split()
        serializer.instance = services.customer_create(
            **details, **limits, **audit_context(self.request)
        )

    def perform_update(self, serializer):
        details, limits = serializer.split()
        customer = serializer.instance
        if details:
            services.customer_update(customer=customer, **details, **audit_context(self.request))
        if limits:
            services.customer_update_limits(
                customer=customer, **limits, **audit_context(self.request)
            )
        serializer.instance = self.get_object()

    def _answer(self):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=None, responses=CustomerSerializer)
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        """Every token of the customer stops working at once (the proxy checks the status)."""
        services.customer_suspend(customer=self.get_object(), **audit_context(request))
        return self._answer()

    @extend_schema(request=None, responses=CustomerSerializer)
    @action(detail=True, methods=["post"])
    def reactivate(self, request, pk=None):
        services.customer_reactivate(customer=self.get_object(), **audit_context(request))
        return self._answer()

    @extend_schema(request=None, responses=CustomerSerializer)
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        """Close the account: its tokens are revoked. Reactivate to open it again."""
        services.customer_close(customer=self.get_object(), **audit_context(request))
        return self._answer()

    @extend_schema(methods=["GET"], responses=LimitsSerializer)
    @extend_schema(methods=["PATCH"], request=LimitsSerializer, responses=LimitsSerializer)
    @action(detail=True, methods=["get", "patch"], serializer_class=LimitsSerializer)
    def limits(self, request, pk=None):
        """The limits the proxy enforces; PATCH changes only the fields sent."""
        customer = self.get_object()
        if request.method == "PATCH":
            serializer = LimitsSerializer(customer, data=request.data, partial=True)
            serializer.is_valid(raise_exception=True)
            customer = services.customer_update_limits(
                customer=customer, **serializer.validated_data, **audit_context(request)
            )
        return Response(LimitsSerializer(customer).data)


class CustomerChildMixin:
    """Resources under /customers/{customer_pk}/: the customer must be one the caller sees."""

    def get_customer(self) -> Customer:
        if not hasattr(self, "_customer"):
            customers = Customer.objects.all()
            customer_id = customer_scope(self.request)
            if customer_id is not None:
                customers = customers.filter(pk=customer_id)
            self._customer = get_object_or_404(customers, pk=self.kwargs["customer_pk"])
        return self._customer


@extend_schema(parameters=[CUSTOMER_PK])
class TokenViewSet(
    CustomerChildMixin,
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    SharedViewSet,
):
    """A customer's Bearer tokens. The plaintext appears once: in the answer that created it."""

    serializer_class = TokenSerializer
    lookup_value_regex = UUID_RE
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    filterset_fields = ["status"]
    ordering_fields = ["created_at", "label", "expires_at"]
    ordering = ["-created_at"]
    idempotency_redact_fields = ("token",)

    def get_queryset(self):
        if schema_only(self):
            return Token.objects.none()
        return selectors.token_list(customer=self.get_customer())

    def paginate_queryset(self, queryset):
        """The page's tokens with their live last use: one batched read of the proxy's
        counters per page (customers.live), as on the web pages."""
        page = super().paginate_queryset(queryset)
        return None if page is None else live.with_last_use(page)

    def retrieve(self, request, *args, **kwargs):
        (token,) = live.with_last_use([self.get_object()])
        return Response(self.get_serializer(token).data)

    @extend_schema(request=TokenCreateSerializer, responses={201: IssuedTokenSerializer})
    def create(self, request, *args, **kwargs):
        """Issue a token. Send an Idempotency-Key to retry safely: a replay omits `token`."""
        return self.idempotently(request, lambda: self._issue(request))

    def _issue(self, request):
        serializer = TokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        issued = services.token_create(
            customer=self.get_customer(),
            label=data.get("label", "default"),
            expires_at=data.get("expires_at", services.DEFAULT),
            plaintext=data.get("import_token") or None,
            limits={k: v for k, v in data.items() if k in services.TOKEN_LIMIT_FIELDS},
            **audit_context(request),
        )
        return Response(IssuedTokenSerializer.of(issued), status=status.HTTP_201_CREATED)

    @extend_schema(request=TokenLimitsSerializer, responses=TokenSerializer)
    def partial_update(self, request, customer_pk=None, pk=None):
        """Change the token's own limits (only the fields sent): inside the customer's, its
        models among the customer's. The proxy applies them on the token's next request."""
        token = self.get_object()
        serializer = TokenLimitsSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        token = services.token_update_limits(
            token=token, **serializer.validated_data, **audit_context(request)
        )
        return Response(TokenSerializer(token).data)

    @extend_schema(request=TokenRotateSerializer, responses={201: IssuedTokenSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request, customer_pk=None, pk=None):
        """A new token with the same label (its plaintext, once); the old one keeps working for
        `grace_hours`, then stops."""
        token = self.get_object()

        def run():
            serializer = TokenRotateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = dict(serializer.validated_data)
            issued = services.token_rotate(
                token=token,
                grace_hours=data.get("grace_hours"),
                expires_at=data.get("expires_at", services.DEFAULT),
                **audit_context(request),
            )
            return Response(IssuedTokenSerializer.of(issued), status=status.HTTP_201_CREATED)

        return self.idempotently(request, run)

    @extend_schema(request=None, responses=TokenSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, customer_pk=None, pk=None):
        """Effective at once: the proxy reads the token item on every request."""
        token = services.token_revoke(token=self.get_object(), **audit_context(request))
        return Response(TokenSerializer(token).data)


@extend_schema(parameters=[CUSTOMER_PK])
class CustomerUserViewSet(
    CustomerChildMixin,
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    SharedViewSet,
):
    """A customer's logins. Inviting one emails a link to choose a password."""

    serializer_class = CustomerUserSerializer
    lookup_value_regex = "[0-9]+"
    filter_backends = [OrderingFilter]
    ordering_fields = ["email", "date_joined"]
    ordering = ["email"]

    def get_queryset(self):
        if schema_only(self):
            return User.objects.none()
        return User.objects.filter(customer=self.get_customer())

    @extend_schema(request=InviteSerializer, responses={201: CustomerUserSerializer})
    def create(self, request, *args, **kwargs):
        """Invite a user: a login without a password, and an email with a link to set one."""
        return self.idempotently(request, lambda: self._invite(request))

    def _invite(self, request):
        serializer = InviteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = onboarding.customer_user_invite(
            customer=self.get_customer(), **serializer.validated_data, **audit_context(request)
        )
        return Response(CustomerUserSerializer(user).data, status=status.HTTP_201_CREATED)

    def _set_active(self, request, active: bool):
        user = onboarding.customer_user_set_active(
            user=self.get_object(), active=active, **audit_context(request)
        )
        return Response(CustomerUserSerializer(user).data)

    @extend_schema(request=None, responses=CustomerUserSerializer)
    @action(detail=True, methods=["post"])
    def disable(self, request, customer_pk=None, pk=None):
        """The user can no longer sign in (signed out at once)."""
        return self._set_active(request, False)

    @extend_schema(request=None, responses=CustomerUserSerializer)
    @action(detail=True, methods=["post"])
    def enable(self, request, customer_pk=None, pk=None):
        return self._set_active(request, True)


class AuditEventFilter(CustomerFilterSet):
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["customer", "action", "object_type", "object_id"]


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, StaffViewSet):
    """The audit trail (staff only): who changed what, when and from where."""

    serializer_class = AuditEventSerializer
    queryset = AuditEvent.objects.all()
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    filterset_class = AuditEventFilter
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]


def register(router):
    router.register("customers", CustomerViewSet, basename="customer")
    router.register(f"{NESTED}/tokens", TokenViewSet, basename="customer-token")
    router.register(f"{NESTED}/users", CustomerUserViewSet, basename="customer-user")
    router.register("audit-events", AuditEventViewSet, basename="audit-event")
