"""How projects share clusters, as insight reads it: each project's usage and quota on a cluster, and, where
quotas decide (more than one project, or a limit: `scheduling.projects`), the pass a cluster's waiting
deployments are explained by. Read inside the caller's snapshot."""
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Sum

from clusters.models import Cluster, ClusterQuota
from organizations.models import Project
from scheduling.insight import ProjectShare
from scheduling.planner import Running
from scheduling.projects import NO_QUOTA, ProjectPlan, Quota, plan_with_quotas, priority_rules_suffice
from scheduling.resources import Resources

from .models import Deployment
from .snapshot import as_quota, queue_of, running_of


@dataclass
class ClusterShares:
    usage: dict[int, Resources] = field(default_factory=dict)  # project -> what its running deployments hold
    # For a cluster no projects share: what its one project (the default) holds, read off its counters.
    only_project_holds: Resources | None = None
    quotas: dict[int, Quota] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    # Where quotas decide: the pass over the cluster as it is, and what it plans from.
    decided: ProjectPlan | None = None
    running: list[Running] = field(default_factory=list)

    def share(self, project: int, demand: Resources) -> ProjectShare:
        quota = self.quotas.get(project, NO_QUOTA)
        usage = self.usage.get(project, self.only_project_holds or Resources.zero())
        # Unnamed: a cluster no projects share runs only its default project (or the names were not asked for).
        return ProjectShare(project, self.names.get(project, "default"), usage, quota.guaranteed, quota.limit,
                            borrowing=not (usage + demand).fits_in(quota.guaranteed))

    def preemptible(self, project: int, priority: int, demand: Resources) -> Resources:
        """What a pass could evict for a deployment of `project`: strictly lower priority of its own project under
        the cap, and, while it stays within its guarantee, what other projects hold beyond theirs."""
        held = Resources.zero()
        within = not self.share(project, demand).borrowing
        for r in self.running:
            if r.project == project and r.priority < priority and r.evictable:
                held += r.demand
            elif r.project != project and within and not self.usage[r.project].fits_in(
                    self.quotas.get(r.project, NO_QUOTA).guaranteed):
                held += r.demand
        return held


def read_shares(clusters: dict[int, Cluster], projects: Iterable[int] = (), *, with_names: bool = True,
                ) -> dict[int, ClusterShares]:
    """Per cluster: its projects' usage and quotas, their names and, where quotas decide, its pass.

    A cluster that projects do not share (`shared`, see `insight._insight_clusters`) costs no query: all it
    runs is its default project's. The others cost three queries in all (two without names), and two more
    each where quotas decide."""
    shares = {pk: ClusterShares() for pk in clusters}
    for pk, cluster in clusters.items():
        if not cluster.shared:
            shares[pk].only_project_holds = cluster.allocated
    shared = [pk for pk, cluster in clusters.items() if cluster.shared]
    if not shared:
        return shares
    active = defaultdict(set)
    for row in (Deployment.objects.filter(cluster_id__in=shared).active().order_by()
                .values("cluster_id", "project_id", "status")
                .annotate(cpu=Sum("cpu_required"), ram=Sum("ram_required"), gpu=Sum("gpu_required"))):
        active[row["cluster_id"]].add(row["project_id"])
        if row["status"] == Deployment.Status.RUNNING:
            shares[row["cluster_id"]].usage[row["project_id"]] = Resources(row["cpu"], row["ram"], row["gpu"])
    for quota in ClusterQuota.objects.filter(cluster_id__in=shared):
        shares[quota.cluster_id].quotas[quota.project_id] = as_quota(quota)
    names = dict(Project.objects.filter(pk__in={*projects, *(p for ps in active.values() for p in ps)})
                 .values_list("pk", "name")) if with_names else {}
    for pk in shared:
        cluster, share = clusters[pk], shares[pk]
        share.names = names
        if priority_rules_suffice(active[pk], share.quotas):
            continue
        running, queue = running_of(pk), queue_of(cluster)[0]
        # Its other projects' work may all wait for dependencies: then the pass is the planner's alone.
        if not priority_rules_suffice({r.project for r in running} | {p.project for p in queue}, share.quotas):
            share.running = running
            share.decided = plan_with_quotas(cluster.capacity, running, queue, share.quotas)
    return shares
