"""Query-string filters for the deployment list."""
import django_filters

from .models import Deployment, Status


class DeploymentFilter(django_filters.FilterSet):
    # Each deployment joins exactly one membership row of the caller, so there is nothing to de-duplicate;
    # DISTINCT would make PostgreSQL compute every row's queue position before paginating.
    status = django_filters.MultipleChoiceFilter(choices=Status.choices, distinct=False)
    organization = django_filters.NumberFilter(field_name="cluster__organization")

    class Meta:
        model = Deployment
        fields = ("status", "cluster", "organization", "priority")
