from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from billing import urls as billing_urls
from core import sso, two_factor_views
from customers import urls as customers_urls
from usage import urls as usage_urls

from . import account_views, api_key_views, views
from .dashboard import urls as dashboard_urls

staff_patterns = (
    [
        path("", views.staff_home, name="home"),
        path("api-keys/", api_key_views.api_key_list, name="api_keys"),
        path("api-keys/<int:pk>/revoke/", api_key_views.api_key_revoke_view, name="api_key_revoke"),
        *customers_urls.staff_urlpatterns,
        *usage_urls.staff_urlpatterns,
        *billing_urls.staff_urlpatterns,
        *dashboard_urls.staff_urlpatterns,
    ],
    "staff",
)

customer_patterns = (
    [
        path("", views.customer_home, name="home"),
        path("account/", account_views.customer_account, name="customer_account"),
        *customers_urls.customer_urlpatterns,
        *usage_urls.customer_urlpatterns,
        *billing_urls.customer_urlpatterns,
    ],
    "customer",
)

account_patterns = [
    path("login/", two_factor_views.LoginView.as_view(), name="login"),
    path("login/code/", two_factor_views.login_code, name="login_code"),
    path("two-factor/", two_factor_views.two_factor, name="two_factor"),
    path("two-factor/setup/", two_factor_views.two_factor_setup, name="two_factor_setup"),
    *sso.urlpatterns,
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password/change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path(
        "password/reset/",
        auth_views.PasswordResetView.as_view(
            subject_template_name="registration/password_reset_subject.txt",
            email_template_name="registration/password_reset_email.txt",
            html_email_template_name="registration/password_reset_email.html",
        ),
        name="password_reset",
    ),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("healthz/live", views.healthz_live, name="healthz_live"),
    path("accounts/", include(account_patterns)),
    path("staff/", include(staff_patterns)),
    path("app/", include(customer_patterns)),
    path("api/", include("portal.api.urls")),
    *billing_urls.public_urlpatterns,
    path("django-admin/", admin.site.urls),
]
