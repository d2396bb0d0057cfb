"""Query-string filters for the deployment list."""
import django_filters

from hypervisor_mlops.api.filters import WholeNumberFilter

from .models import Deployment, EndReason, Status


class DeploymentFilter(django_filters.FilterSet):
    # Each deployment joins exactly one membership row of the caller, so there is nothing to de-duplicate;
    # DISTINCT would make PostgreSQL compute every row's queue position before paginating.
    status = django_filters.MultipleChoiceFilter(choices=Status.choices, distinct=False)
    cluster = WholeNumberFilter(field_name="cluster_id")
    organization = WholeNumberFilter(field_name="cluster__organization_id")
    project = WholeNumberFilter(field_name="project_id")
    priority = WholeNumberFilter(min_value=-(2**31), max_value=2**31 - 1)  # the signed 32-bit range of priorities
    end_reason = django_filters.MultipleChoiceFilter(choices=EndReason.choices, distinct=False)
    ready = django_filters.ChoiceFilter(choices=(("true", "true"), ("false", "false")), method="filter_ready",
                                        label="Those with a health check that are (or are not) ready.")

    class Meta:
        model = Deployment
        fields = ("status", "cluster", "organization", "project", "priority", "end_reason", "ready")

    def filter_ready(self, queryset, name: str, value: str):
        return queryset.ready(value == "true")
