"""Routes of the agent-facing API."""
from django.urls import re_path

from .views import AgentSyncView

urlpatterns = [re_path(r"^sync/?$", AgentSyncView.as_view(), name="agent-sync")]
