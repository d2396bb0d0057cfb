"""GET /metrics per project: each project's guarantee and usage on each cluster, exact at scrape time."""
import pytest

from clusters.models import ClusterQuota
from tests.deployments.api import submit
from tests.factories import ClusterFactory, ProjectFactory
from tests.ops.test_metrics import metrics_token, scrape, value  # noqa: F401 (metrics_token is a fixture)


@pytest.mark.django_db(transaction=True)
def test_project_usage_and_guarantee_are_exact(admin, organization, metrics_token):  # noqa: F811
    pool = ClusterFactory(organization=organization, cpu_limit="16", ram_limit="64", gpu_limit=8)
    research, idle = (ProjectFactory(organization=organization, name=name) for name in ("research", "idle"))
    default = organization.default_project
    ClusterQuota.objects.create(cluster=pool, project=research, guaranteed_cpu="4.5", guaranteed_ram=16,
                                guaranteed_gpu=4, limit_cpu=8, limit_ram=32, limit_gpu=6)
    ClusterQuota.objects.create(cluster=pool, project=idle, guaranteed_gpu=2)
    submit(admin, pool, project=research.pk, cpu="1.25", ram="2", gpu=3)
    submit(admin, pool, project=research.pk, cpu="0.5", ram="1", gpu=1)
    submit(admin, pool, cpu="2", ram="4", gpu=0)
    submit(admin, pool, project=research.pk, cpu="1", ram="1", gpu=8)  # pending: counts for nothing
    samples = scrape()
    c, r, i, d = str(pool.pk), str(research.pk), str(idle.pk), str(default.pk)
    usage = {(p, resource): value(samples, "hypervisor_project_usage", cluster=c, project=p, resource=resource)
             for p in (r, i, d) for resource in ("cpu", "ram", "gpu")}
    assert usage == {(r, "cpu"): 1.75, (r, "ram"): 3, (r, "gpu"): 4, (i, "cpu"): 0, (i, "ram"): 0, (i, "gpu"): 0,
                     (d, "cpu"): 2, (d, "ram"): 4, (d, "gpu"): 0}
    assert value(samples, "hypervisor_project_guaranteed", cluster=c, project=r, resource="cpu") == 4.5
    assert value(samples, "hypervisor_project_guaranteed", cluster=c, project=r, resource="gpu") == 4
    assert value(samples, "hypervisor_project_guaranteed", cluster=c, project=i, resource="gpu") == 2
    # Without a quota, no guarantee series: its guarantee is zero.
    assert ("hypervisor_project_guaranteed", frozenset({"cluster": c, "project": d, "resource": "gpu"}.items())) \
        not in samples
