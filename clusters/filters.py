"""Query-string filters for the cluster list (declared once, not rebuilt per request)."""
import django_filters

from .models import Cluster


class ClusterFilter(django_filters.FilterSet):
    class Meta:
        model = Cluster
        fields = ("organization",)
