"""Query-string filters for the deployment list."""
import django_filters

from .models import Deployment, Status


class DeploymentFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    organization = django_filters.NumberFilter(field_name="cluster__organization")

    class Meta:
        model = Deployment
        fields = ("status", "cluster", "organization", "priority")
