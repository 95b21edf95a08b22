"""/api/v1/usage/ and /api/v1/alerts/: billed daily usage rows (filterable), totals, the CSV
export, threshold alerts and each customer's alert settings. Reads use usage.selectors, the
CSV is usage.export's and settings are validated and saved by the staff page's own form."""

import django_filters
from django.shortcuts import get_object_or_404
from django.urls import path
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, renderers, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.filters import OrderingFilter
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.base import (
    CustomerFilterSet,
    PortalAutoSchema,
    SharedViewSet,
    StaffOrOwnCustomerReadOnly,
    StaffViewSet,
    customer_scope,
)
from core.api.idempotency import IdempotentCreateMixin
from core.api.parsers import DepthLimitedJSONParser
from customers import money
from customers.models import Customer

from . import selectors
from .export import usage_csv_response
from .forms import MAX_VIEW_DAYS, PERCENT_FIELDS, UsageSettingsForm
from .models import Alert, AlertDelivery, CustomerUsageSettings, IngestRun, UsageDaily
from .services import ingest_range_request, usage_settings_update, utc_today

GROUP_BY = ["model_id", "application_id", "cost_center", "environment", "day"]


class UsageDailySerializer(serializers.ModelSerializer):
    class Meta:
        model = UsageDaily
        fields = [
            "id",
            "customer",
            "day",
            "model_id",
            "application_id",
            "cost_center",
            "environment",
            *selectors.COUNT_FIELDS,
        ]
        read_only_fields = fields


class RangeQuery(serializers.Serializer):
    """A date range (inclusive; default: this month so far) and, for staff, one customer."""

    customer = serializers.UUIDField(required=False, help_text="Staff: one customer's usage.")
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False)

    def validate(self, data):
        today = utc_today()
        data.setdefault("start", today.replace(day=1))
        data.setdefault("end", today)
        if data["start"] > data["end"]:
            raise serializers.ValidationError({"start": "The start date is after the end date."})
        if (data["end"] - data["start"]).days >= MAX_VIEW_DAYS:
            raise serializers.ValidationError({"end": f"Choose at most {MAX_VIEW_DAYS} days."})
        return data


class TotalsQuery(RangeQuery):
    group_by = serializers.ChoiceField(choices=GROUP_BY, required=False)


class GroupRowSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The value of `group_by` (a date for `day`).")
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_read_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()


class CountsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_read_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()


class TotalsSerializer(serializers.Serializer):
    customer = serializers.UUIDField(allow_null=True)
    start = serializers.DateField()
    end = serializers.DateField()
    totals = CountsSerializer()
    group_by = serializers.ChoiceField(choices=GROUP_BY, allow_null=True)
    groups = GroupRowSerializer(many=True)


class CsvRenderer(renderers.BaseRenderer):
    """Lets `Accept: text/csv` through negotiation; errors still render as JSON text."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return renderers.JSONRenderer().render(data)


class UsageFilter(CustomerFilterSet):
    start = django_filters.DateFilter(field_name="day", lookup_expr="gte")
    end = django_filters.DateFilter(field_name="day", lookup_expr="lte")

    class Meta:
        model = UsageDaily
        fields = ["customer", "day", "model_id", "application_id", "cost_center", "environment"]


class UsageViewSet(mixins.ListModelMixin, SharedViewSet):
    """Billed usage: one row per customer, day, model, application, cost center and
    environment, from the per-request events. Customer users see only their own."""

    serializer_class = UsageDailySerializer
    queryset = UsageDaily.objects.all()
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    filterset_class = UsageFilter
    ordering_fields = ["day", "requests", "input_tokens", "output_tokens"]
    ordering = ["-day"]

    def get_queryset(self):
        return self.scoped(super().get_queryset())

    def _range(self, serializer_class):
        query = serializer_class(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        scope = customer_scope(self.request)
        customer_id = data.get("customer") if scope is None else scope
        if scope is not None and data.get("customer") not in (None, scope):
            raise NotFound("No such customer.")  # another customer's usage does not exist
        return data, customer_id

    @extend_schema(parameters=[TotalsQuery], responses=TotalsSerializer)
    @action(detail=False, filter_backends=[], pagination_class=None)
    def totals(self, request):
        """Sums over the range, optionally grouped by model, application, cost center,
        environment or day."""
        data, customer_id = self._range(TotalsQuery)
        start, end, by = data["start"], data["end"], data.get("group_by")
        groups = []
        if by:
            rows = selectors.usage_grouped(customer_id=customer_id, start=start, end=end, by=by)
            groups = [{**r, "key": str(r[by])} for r in rows]
        totals = selectors.usage_totals(customer_id=customer_id, start=start, end=end)
        body = {"customer": customer_id, "start": start, "end": end, "totals": totals}
        return Response(TotalsSerializer({**body, "group_by": by, "groups": groups}).data)

    @extend_schema(
        parameters=[RangeQuery],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="One line per usage row, with a header line."
            )
        },
    )
    @action(
        detail=False,
        url_path="csv",
        filter_backends=[],
        pagination_class=None,
        renderer_classes=[renderers.JSONRenderer, CsvRenderer],
    )
    def csv(self, request):
        """The rows of the range as CSV, streamed (any size)."""
        data, customer_id = self._range(RangeQuery)
        start, end = data["start"], data["end"]
        return usage_csv_response(
            customer_id=customer_id, start=start, end=end, name=str(customer_id or "all")
        )


class AlertDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertDelivery
        fields = ["channel", "status", "attempts", "detail", "sent_at"]
        read_only_fields = fields


class AlertSerializer(serializers.ModelSerializer):
    value = serializers.IntegerField(
        read_only=True,
        help_text="Tokens or requests; for monthly_budget, micro-units of `currency` "
        "(1,000,000 per unit).",
    )
    limit = serializers.IntegerField(read_only=True, help_text="In the unit of `value`.")
    currency = serializers.SerializerMethodField()
    value_amount = serializers.DecimalField(
        max_digits=24,
        decimal_places=6,
        read_only=True,
        allow_null=True,
        help_text="monthly_budget: `value` as an amount of `currency` (a decimal string); "
        "null for the other rules.",
    )
    limit_amount = serializers.DecimalField(
        max_digits=24, decimal_places=6, read_only=True, allow_null=True
    )
    deliveries = serializers.SerializerMethodField(
        help_text="Beyond email and the signed webhook: the SNS topic, the customer's and the "
        "staff Slack webhooks (customers see their own Slack only). Several alerts of one "
        "check share one message per channel."
    )

    class Meta:
        model = Alert
        fields = [
            "id",
            "customer",
            "rule",
            "threshold",
            "period",
            "subject",
            "value",
            "limit",
            "currency",
            "value_amount",
            "limit_amount",
            "created_at",
            "emailed_at",
            "webhook_status",
            "deliveries",
        ]
        read_only_fields = fields

    @extend_schema_field(AlertDeliverySerializer(many=True))
    def get_deliveries(self, alert) -> list:
        request = self.context.get("request")
        shown = alert.deliveries.all()  # prefetched by AlertViewSet
        if request is not None and customer_scope(request) is not None:
            shown = [d for d in shown if d.channel == AlertDelivery.Channel.SLACK]
        return AlertDeliverySerializer(shown, many=True).data

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_currency(self, alert) -> str | None:
        """The currency of a money rule's amounts (monthly_budget); null for the others."""
        return money.currency() if alert.is_money else None


class AlertFilter(CustomerFilterSet):
    class Meta:
        model = Alert
        fields = ["customer", "rule", "period"]


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, SharedViewSet):
    """Threshold crossings (each notified once per period). Customers see their own."""

    serializer_class = AlertSerializer
    queryset = Alert.objects.all()
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    filterset_class = AlertFilter
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]

    def get_queryset(self):
        return self.scoped(super().get_queryset()).prefetch_related("deliveries")


class AlertSettingsSerializer(serializers.ModelSerializer):
    monthly_token_percents = serializers.ListField(
        child=serializers.IntegerField(), required=False, max_length=50
    )
    daily_request_percents = serializers.ListField(
        child=serializers.IntegerField(), required=False, max_length=50
    )
    monthly_budget_percents = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        max_length=50,
        help_text="Percents of the customer's monthly budget; empty: no budget alerts.",
    )
    webhook_url = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text="An https URL, or empty."
    )
    webhook_secret = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="The signing secret, only in the answer that generated it (a new webhook URL, "
        "or regenerate_secret); null otherwise.",
    )
    regenerate_secret = serializers.BooleanField(write_only=True, required=False)
    slack_webhook_url = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="A Slack-compatible incoming webhook (https); alerts are posted there, several "
        "at once in one message. Write-only: it is a credential. Empty removes it.",
    )
    slack_webhook = serializers.CharField(
        source="slack_webhook_masked",
        read_only=True,
        help_text='The Slack webhook, masked ("https://hooks.slack.com/…x9Zq"); "" when none.',
    )

    class Meta:
        model = CustomerUsageSettings
        fields = [
            "monthly_token_percents",
            "daily_request_percents",
            "monthly_budget_percents",
            "hourly_token_threshold",
            "notify_staff",
            "webhook_url",
            "summary_frequency",
            "webhook_secret",
            "regenerate_secret",
            "slack_webhook_url",
            "slack_webhook",
        ]


class AlertSettingsView(APIView):
    """A customer's alert thresholds (percents of quota, daily limit and budget, the hourly rule),
    staff copy, webhook and summary emails. PATCH changes only the fields sent."""

    schema = PortalAutoSchema()
    parser_classes = [DepthLimitedJSONParser]
    permission_classes = [StaffOrOwnCustomerReadOnly]

    def _customer(self, customer_pk) -> Customer:
        scope = customer_scope(self.request)
        customers = Customer.objects.all()
        if scope is not None:
            customers = customers.filter(pk=scope)
        return get_object_or_404(customers, pk=customer_pk)

    def _answer(self, current, secret_shown=False):
        data = AlertSettingsSerializer(current).data
        if not secret_shown or customer_scope(self.request) is not None:
            data["webhook_secret"] = None
        return Response(data)

    @extend_schema(responses=AlertSettingsSerializer)
    def get(self, request, customer_pk):
        current = selectors.usage_settings_for(customer=self._customer(customer_pk))
        return self._answer(current)

    @extend_schema(request=AlertSettingsSerializer, responses=AlertSettingsSerializer)
    def patch(self, request, customer_pk):
        current = selectors.usage_settings_for(customer=self._customer(customer_pk))
        serializer = AlertSettingsSerializer(current, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        merged = {
            name: getattr(current, name)
            for name in UsageSettingsForm.Meta.fields
            if name not in serializer.validated_data
        }
        merged.update(serializer.validated_data)
        form_data = {k: v for k, v in merged.items() if v is not None and v is not False}
        for name in PERCENT_FIELDS:
            form_data[name] = ", ".join(str(v) for v in merged.get(name) or [])
        if form_data.get("slack_webhook_url") == "":  # sent empty: remove it
            form_data["remove_slack_webhook"] = True
        old_secret = current.webhook_secret
        form = UsageSettingsForm(form_data, instance=current)
        if not form.is_valid():
            raise serializers.ValidationError(
                {
                    "non_field_errors" if name == "__all__" else name: [e["message"] for e in errs]
                    for name, errs in form.errors.get_json_data().items()
                }
            )
        saved = usage_settings_update(customer=current.customer, **form.changes())
        return self._answer(saved, secret_shown=saved.webhook_secret != old_secret)


class IngestRunSerializer(serializers.ModelSerializer):
    status = serializers.CharField(
        read_only=True, help_text="queued, running, succeeded or failed."
    )

    class Meta:
        model = IngestRun
        fields = [
            "id",
            "trigger",
            "engine",
            "start_day",
            "end_day",
            "status",
            "days_total",
            "days_done",
            "rows_written",
            "errors",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class IngestRequestSerializer(serializers.Serializer):
    start = serializers.DateField(help_text="First day (UTC).")
    end = serializers.DateField(help_text="Last day (UTC, inclusive); before today.")
    engine = serializers.ChoiceField(
        choices=["athena", "duckdb"], required=False, help_text="Default: the configured one."
    )


class IngestRunViewSet(
    IdempotentCreateMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, StaffViewSet
):
    """Re-ingest finished days of usage (staff): the run is queued and replaces those days."""

    serializer_class = IngestRunSerializer
    filter_backends = [OrderingFilter]
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]

    def get_queryset(self):
        return selectors.ingest_run_list()

    @extend_schema(request=IngestRequestSerializer, responses={202: IngestRunSerializer})
    def create(self, request, *args, **kwargs):
        return self.idempotently(request, lambda: self._queue(request))

    def _queue(self, request):
        serializer = IngestRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = ingest_range_request(
            start=data["start"],
            end=data["end"],
            trigger=IngestRun.Trigger.STAFF,
            requested_by=request.user,
            engine=data.get("engine"),
        )
        return Response(IngestRunSerializer(run).data, status=202)


def register(router):
    router.register("usage/ingest-runs", IngestRunViewSet, basename="ingest-run")
    router.register("usage", UsageViewSet, basename="usage")
    router.register("alerts", AlertViewSet, basename="alert")


urlpatterns = [
    path(
        "customers/<uuid:customer_pk>/alert-settings/",
        AlertSettingsView.as_view(),
        name="api-alert-settings",
    ),
]
