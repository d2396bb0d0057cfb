"""Metrics of clusters, read from the database at scrape time (named in settings.METRICS_COLLECTORS)."""
from prometheus_client.core import GaugeMetricFamily

from .models import Cluster

RESOURCES = ("cpu", "ram", "gpu")


class ClusterCollector:
    """Each cluster's capacity and what running deployments hold of it, in one query."""

    def collect(self):
        capacity = GaugeMetricFamily("hypervisor_cluster_capacity", "A cluster's capacity, by resource.",
                                     labels=["cluster", "resource"])
        allocated = GaugeMetricFamily("hypervisor_cluster_allocated",
                                      "What running deployments hold on a cluster, by resource.",
                                      labels=["cluster", "resource"])
        for pk, *values in Cluster.objects.order_by("pk").values_list(
                "pk", "cpu_limit", "ram_limit", "gpu_limit", "cpu_allocated", "ram_allocated", "gpu_allocated"):
            for resource, limit, held in zip(RESOURCES, values[:3], values[3:]):
                capacity.add_metric([str(pk), resource], float(limit))
                allocated.add_metric([str(pk), resource], float(held))
        yield capacity
        yield allocated
