from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from core.access import is_staff_user
from core.api.base import ErrorSerializer
from core.models import ApiKey


@extend_schema(
    responses={
        200: inline_serializer(
            "Me",
            {
                "email": serializers.EmailField(),
                "role": serializers.ChoiceField(choices=["staff", "customer"]),
                "customer_id": serializers.UUIDField(allow_null=True),
                "api_key_scope": serializers.CharField(allow_null=True),
            },
        ),
        401: ErrorSerializer,
        429: ErrorSerializer,
    }
)
@api_view(["GET"])
@permission_classes([IsAuthenticated])
def me(request):
    """Who the API sees: your role, your customer account, and your API key's scope."""
    user = request.user
    return Response(
        {
            "email": user.email,
            "role": "staff" if is_staff_user(user) else "customer",
            "customer_id": str(user.customer_id) if user.customer_id else None,
            "api_key_scope": request.auth.scope if isinstance(request.auth, ApiKey) else None,
        }
    )
