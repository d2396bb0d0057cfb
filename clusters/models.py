"""Clusters: a fixed capacity of CPU, RAM and GPU that an organization's deployments share."""
from datetime import datetime, timedelta

from django.db import models

from organizations.models import TenantQuerySet
from scheduling.resources import Resources

RESOURCE_DECIMAL = {"max_digits": 12, "decimal_places": 3}
DUPLICATE_NAME = "A cluster with this name already exists in this organization."
DEFAULT_RESERVE_AFTER_SECONDS = 600
MAX_WEIGHT = 1000


class ClusterQuerySet(TenantQuerySet):
    organization_path = "organization__"


class Cluster(models.Model):
    """Capacity is set by admins; the allocated counters are kept by the scheduler under the row lock.

    The counters always equal what running deployments hold (the reconcile task proves and repairs it);
    CHECK constraints keep them within 0..capacity, so no bug can promise more than the cluster has.
    """

    organization = models.ForeignKey("organizations.Organization", on_delete=models.PROTECT, related_name="clusters")
    name = models.CharField(max_length=200)
    cpu_limit = models.DecimalField(**RESOURCE_DECIMAL)
    ram_limit = models.DecimalField(**RESOURCE_DECIMAL)
    gpu_limit = models.PositiveIntegerField()
    cpu_allocated = models.DecimalField(**RESOURCE_DECIMAL, default=0, editable=False)
    ram_allocated = models.DecimalField(**RESOURCE_DECIMAL, default=0, editable=False)
    gpu_allocated = models.PositiveIntegerField(default=0, editable=False)
    # The starvation bound: a pending deployment that has waited this long has what frees up set aside for it.
    reserve_after_seconds = models.PositiveIntegerField(
        null=True, blank=True, default=DEFAULT_RESERVE_AFTER_SECONDS,
        help_text="Seconds a pending deployment waits before what frees up is set aside for it; empty: never.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ClusterQuerySet.as_manager()

    class Meta:
        ordering = ("id",)
        constraints = [
            models.UniqueConstraint(
                fields=("organization", "name"),
                name="%(app_label)s_%(class)s_organization_name_unique",
                violation_error_message=DUPLICATE_NAME,
            ),
            models.CheckConstraint(
                condition=models.Q(cpu_limit__gte=0, ram_limit__gte=0, gpu_limit__gte=0),
                name="%(app_label)s_%(class)s_limits_nonnegative",
                violation_error_message="Capacities cannot be negative.",
            ),
            models.CheckConstraint(
                condition=models.Q(cpu_limit__gt=0) | models.Q(ram_limit__gt=0) | models.Q(gpu_limit__gt=0),
                name="%(app_label)s_%(class)s_limits_not_all_zero",
                violation_error_message="A cluster needs a capacity above zero for at least one resource.",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    cpu_allocated__gte=0,
                    ram_allocated__gte=0,
                    gpu_allocated__gte=0,
                    cpu_allocated__lte=models.F("cpu_limit"),
                    ram_allocated__lte=models.F("ram_limit"),
                    gpu_allocated__lte=models.F("gpu_limit"),
                ),
                name="%(app_label)s_%(class)s_allocated_within_limits",
                violation_error_message="Allocations must stay between zero and the capacity.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def capacity(self) -> Resources:
        return Resources(self.cpu_limit, self.ram_limit, self.gpu_limit)

    @property
    def allocated(self) -> Resources:
        return Resources(self.cpu_allocated, self.ram_allocated, self.gpu_allocated)

    @property
    def available(self) -> Resources:
        return self.capacity - self.allocated

    def due_before(self, now: datetime) -> datetime | None:
        """Deployments created before this have waited long enough to reserve; None when it never happens."""
        if self.reserve_after_seconds is None:
            return None
        return now - timedelta(seconds=self.reserve_after_seconds)

    def set_allocated(self, allocated: Resources) -> None:
        """Record what running deployments hold now; callers hold the cluster's lock (clusters.locks)."""
        self.cpu_allocated, self.ram_allocated, self.gpu_allocated = allocated.cpu, allocated.ram, allocated.gpu
        self.save(update_fields=["cpu_allocated", "ram_allocated", "gpu_allocated"])


class ClusterQuota(models.Model):
    """What a project is guaranteed, and may use at most, on one cluster, and its weight when it borrows.

    Without a row a project has nothing guaranteed, no limit and weight 1. The guarantees of a cluster never sum
    to more than its capacity: that spans rows, so `clusters.quotas` keeps it under the cluster lock.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="quotas")
    project = models.ForeignKey("organizations.Project", on_delete=models.CASCADE, related_name="quotas")
    guaranteed_cpu = models.DecimalField(**RESOURCE_DECIMAL, default=0)
    guaranteed_ram = models.DecimalField(**RESOURCE_DECIMAL, default=0)
    guaranteed_gpu = models.PositiveIntegerField(default=0)
    limit_cpu = models.DecimalField(**RESOURCE_DECIMAL, null=True, blank=True)
    limit_ram = models.DecimalField(**RESOURCE_DECIMAL, null=True, blank=True)
    limit_gpu = models.PositiveIntegerField(null=True, blank=True)
    weight = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ("cluster", "project")
        constraints = [
            models.UniqueConstraint(
                fields=("cluster", "project"),
                name="%(app_label)s_%(class)s_cluster_project_unique",
                violation_error_message="A project has one quota per cluster.",
            ),
            models.CheckConstraint(
                condition=models.Q(guaranteed_cpu__gte=0, guaranteed_ram__gte=0, guaranteed_gpu__gte=0),
                name="%(app_label)s_%(class)s_guaranteed_nonnegative",
                violation_error_message="Guarantees cannot be negative.",
            ),
            models.CheckConstraint(
                condition=models.Q(limit_cpu__isnull=True, limit_ram__isnull=True, limit_gpu__isnull=True)
                | models.Q(limit_cpu__isnull=False, limit_ram__isnull=False, limit_gpu__isnull=False),
                name="%(app_label)s_%(class)s_limit_all_or_none",
                violation_error_message="A limit sets every resource, or none.",
            ),
            models.CheckConstraint(
                condition=models.Q(limit_cpu__isnull=True)
                | models.Q(limit_cpu__gte=models.F("guaranteed_cpu"), limit_ram__gte=models.F("guaranteed_ram"),
                           limit_gpu__gte=models.F("guaranteed_gpu")),
                name="%(app_label)s_%(class)s_limit_covers_guaranteed",
                violation_error_message="A limit is never below the guarantee.",
            ),
            models.CheckConstraint(
                condition=models.Q(weight__gte=1, weight__lte=MAX_WEIGHT),
                name="%(app_label)s_%(class)s_weight_range",
                violation_error_message=f"weight is between 1 and {MAX_WEIGHT}.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} on {self.cluster}"

    @property
    def guaranteed(self) -> Resources:
        return Resources(self.guaranteed_cpu, self.guaranteed_ram, self.guaranteed_gpu)

    @property
    def limit(self) -> Resources | None:
        if self.limit_cpu is None:
            return None
        return Resources(self.limit_cpu, self.limit_ram, self.limit_gpu)
