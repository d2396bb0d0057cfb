"""Query-string filters for the cluster list (declared once, not rebuilt per request)."""
import django_filters

from hypervisor_mlops.api.filters import WholeNumberFilter

from .models import Cluster


class ClusterFilter(django_filters.FilterSet):
    organization = WholeNumberFilter(field_name="organization_id")

    class Meta:
        model = Cluster
        fields = ("organization",)
