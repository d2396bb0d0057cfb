"""Metrics of clusters, read from the database at scrape time (named in settings.METRICS_COLLECTORS)."""
from prometheus_client.core import GaugeMetricFamily

from .models import Cluster

RESOURCES = ("cpu", "ram", "gpu")


class ClusterCollector:
    """Each cluster's capacity, what running deployments hold of it and what each project is guaranteed there,
    in one query."""

    def collect(self):
        capacity = GaugeMetricFamily("hypervisor_cluster_capacity", "A cluster's capacity, by resource.",
                                     labels=["cluster", "resource"])
        allocated = GaugeMetricFamily("hypervisor_cluster_allocated",
                                      "What running deployments hold on a cluster, by resource.",
                                      labels=["cluster", "resource"])
        guaranteed = GaugeMetricFamily("hypervisor_project_guaranteed",
                                       "What a project is guaranteed on a cluster, by resource (none: nothing).",
                                       labels=["cluster", "project", "resource"])
        seen = set()
        # One row per quota of a cluster (one with no project for a cluster without quotas).
        for pk, *values, project, g_cpu, g_ram, g_gpu in Cluster.objects.order_by("pk", "quotas__project").values_list(
                "pk", "cpu_limit", "ram_limit", "gpu_limit", "cpu_allocated", "ram_allocated", "gpu_allocated",
                "quotas__project", "quotas__guaranteed_cpu", "quotas__guaranteed_ram", "quotas__guaranteed_gpu"):
            if pk not in seen:
                seen.add(pk)
                for resource, limit, held in zip(RESOURCES, values[:3], values[3:]):
                    capacity.add_metric([str(pk), resource], float(limit))
                    allocated.add_metric([str(pk), resource], float(held))
            if project is not None:
                for resource, amount in zip(RESOURCES, (g_cpu, g_ram, g_gpu)):
                    guaranteed.add_metric([str(pk), str(project), resource], float(amount))
        yield capacity
        yield allocated
        yield guaranteed
