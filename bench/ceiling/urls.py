"""The two URL shapes the A/B compares, with and without the trailing slash, and a readiness probe."""
from django.http import HttpResponse
from django.urls import re_path

from . import views

urlpatterns = [
    re_path(r"^api/v1/deployments/?$", views.DeploymentsView.as_view()),
    re_path(r"^api/v1/clusters/?$", views.ClustersView.as_view()),
    re_path(r"^readyz$", lambda request: HttpResponse("ok")),
]
