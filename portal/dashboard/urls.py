"""Staff dashboard URLs, mounted under /staff/ (namespace "staff") by portal/urls.py."""

from django.urls import path

from . import views

staff_urlpatterns: list = [
    path("dashboard/", views.dashboard_overview, name="dashboard_overview"),
    path("dashboard/models/", views.dashboard_models, name="dashboard_models"),
    path("dashboard/heatmap/", views.dashboard_heatmap, name="dashboard_heatmap"),
    path("dashboard/cost/", views.dashboard_cost, name="dashboard_cost"),
]
