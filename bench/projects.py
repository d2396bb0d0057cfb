"""Benchmark of scheduling with projects on PostgreSQL (issue 22): a cluster shared by ten projects with quotas
against the same cluster with only the default project, in alternating rounds on the same machine.

    .venv/bin/python bench/projects.py [--rounds 3] [--creates 100]

Each cluster holds the same ~10k pending and ~2k running deployments at the scheduler's fixed point (the
specs of bench/scheduler.py's contended cluster, same seed). On the shared one they are dealt round-robin
to ten projects, each guaranteed a twelfth of the capacity, limited to half of it, weighted 1 to 3. Per
round and cluster: a full scheduling pass on the settled cluster (what every submission's pass costs when
the queue is deep), and `creates` x `lifecycle.create_deployment` with its pass (intake). Target: the ten
projects' figures >= 0.9 of the one project's (as rates: passes per second, creates per second).
"""
import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import djangoenv  # noqa: E402
from scheduler import STREAM_PENDING, STREAM_RUNNING, timed_pass  # noqa: E402
from workload import random_demand, random_priority, total  # noqa: E402

PROJECTS = 10
TARGET = 0.9


def build(user, organization, specs, name: str, projects: list | None):
    from django.utils import timezone

    from clusters.models import Cluster, ClusterQuota
    from deployments.models import Deployment

    room = total(demand for _, demand in specs[:STREAM_RUNNING])
    cluster = Cluster.objects.create(organization=organization, name=name, cpu_limit=room.cpu, ram_limit=room.ram,
                                     gpu_limit=room.gpu)
    ids = djangoenv.bulk_queue(cluster=cluster, user=user, specs=specs, start_at=timezone.now())
    if projects:
        for i, project in enumerate(projects):
            ClusterQuota.objects.create(
                cluster=cluster, project=project, guaranteed_cpu=room.cpu / 12, guaranteed_ram=room.ram / 12,
                guaranteed_gpu=room.gpu // 12, limit_cpu=room.cpu / 2, limit_ram=room.ram / 2,
                limit_gpu=room.gpu // 2, weight=1 + i % 3)
            Deployment.objects.filter(pk__in=ids[i::PROJECTS]).update(project=project)
    timed_pass(cluster.pk)  # settle
    djangoenv.analyze()
    return cluster


def intake(cluster, user, project, rng: random.Random, creates: int) -> float:
    """Creates per second, each with the scheduling pass that follows it (eager Celery)."""
    from deployments import lifecycle

    began = time.perf_counter()
    for i in range(creates):
        demand = random_demand(rng)
        lifecycle.create_deployment(cluster=cluster, created_by=user, project=project, name=f"more-{i}",
                                    docker_image="server:2", priority=random_priority(rng),
                                    cpu_required=demand.cpu, ram_required=demand.ram, gpu_required=demand.gpu)
    return creates / (time.perf_counter() - began)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passes", type=int, default=5, help="full passes per round and cluster")
    parser.add_argument("--creates", type=int, default=100, help="creates per round and cluster")
    args = parser.parse_args()
    djangoenv.setup_django(eager=True)
    from organizations.models import Project

    user, organization = djangoenv.make_owner()
    specs = djangoenv.random_specs(random.Random(args.seed), STREAM_PENDING + STREAM_RUNNING)
    projects = [Project.objects.create(organization=organization, name=f"team-{i}") for i in range(PROJECTS)]
    clusters = {"one project": (build(user, organization, specs, "one", None), None),
                "ten projects": (build(user, organization, specs, "ten", projects), projects)}
    passes = {label: [] for label in clusters}
    creates = {label: [] for label in clusters}
    rng = random.Random(args.seed + 1)
    for round_ in range(args.rounds):
        for label, (cluster, owners) in (clusters.items() if round_ % 2 == 0 else reversed(clusters.items())):
            seconds = [timed_pass(cluster.pk)[0] for _ in range(args.passes)]
            passes[label].append(statistics.median(seconds))
            creates[label].append(intake(cluster, user, owners[round_ % PROJECTS] if owners else None, rng,
                                         args.creates))
            print(f"round {round_ + 1}, {label}: pass {passes[label][-1] * 1e3:.0f} ms (median of {args.passes}), "
                  f"intake {creates[label][-1]:.0f} creates/s")
    one, ten = "one project", "ten projects"
    pass_ratio = statistics.median(passes[one]) / statistics.median(passes[ten])
    intake_ratio = statistics.median(creates[ten]) / statistics.median(creates[one])
    for figure, ratio, detail in (
            ("full pass rate, ten / one", pass_ratio,
             f"{statistics.median(passes[ten]) * 1e3:.0f} ms vs {statistics.median(passes[one]) * 1e3:.0f} ms"),
            ("intake with its pass, ten / one", intake_ratio,
             f"{statistics.median(creates[ten]):.0f} vs {statistics.median(creates[one]):.0f} creates/s")):
        print(f"{figure:<34} {ratio:.2f} ({detail})  target >= {TARGET}  {'met' if ratio >= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
