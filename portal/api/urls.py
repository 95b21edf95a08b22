"""/api/: the v1 router, the OpenAPI schema and the browsable docs (served without a CDN).

Each app registers its viewsets in its own `api.py` through `register(router)`.
"""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from billing import api as billing_api
from core.api.errors import api_not_found
from customers import api as customers_api
from usage import api as usage_api

from . import views

router = DefaultRouter(trailing_slash=True)
customers_api.register(router)
billing_api.register(router)
usage_api.register(router)

v1_patterns = [
    path("me/", views.me, name="api-me"),
    *usage_api.urlpatterns,
    path("", include(router.urls)),
]

urlpatterns = [
    path("v1/", include(v1_patterns)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path(
        "redoc/",
        SpectacularRedocView.as_view(url_name="api-schema", template_name="api/redoc.html"),
        name="api-redoc",
    ),
    re_path(r"^.*$", api_not_found),
]
