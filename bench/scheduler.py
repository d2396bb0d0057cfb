"""Benchmark of scheduling passes on PostgreSQL through Django: one 10k placement pass, then streams of creates."""
import argparse
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import djangoenv  # noqa: E402
from workload import percentile, total  # noqa: E402

TARGET_PLACEMENTS_PER_S = 2_000
BULK = 10_000
STREAM_PENDING, STREAM_RUNNING, STREAM_CREATES = 10_000, 2_000, 500


def timed_pass(cluster_id: int, schedule_cluster=None):
    """(seconds, queries, plan) of one passes.schedule_cluster call."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from deployments import passes

    schedule_cluster = schedule_cluster or passes.schedule_cluster
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        result = schedule_cluster(cluster_id=cluster_id)
        elapsed = time.perf_counter() - start
    return elapsed, queries.captured_queries, result


def reset_to_pending(cluster) -> None:
    """Put every deployment of the cluster back in the queue, as if the pass had never run."""
    from deployments.models import Deployment, DeploymentEvent, EventKind

    Deployment.objects.filter(cluster=cluster).update(status="pending", started_at=None)
    DeploymentEvent.objects.filter(deployment__cluster=cluster).exclude(kind=EventKind.QUEUED).delete()
    cluster.cpu_allocated, cluster.ram_allocated, cluster.gpu_allocated = 0, 0, 0
    cluster.save()
    djangoenv.analyze()


def bench_bulk_pass(user, organization, rng: random.Random, runs: int) -> float:
    """(a) One pass placing 10k pending deployments on a cluster with room for all; returns placements/s."""
    from django.utils import timezone

    from clusters.models import Cluster

    specs = djangoenv.random_specs(rng, BULK)
    room = total(demand for _, demand in specs)
    cluster = Cluster.objects.create(organization=organization, name="bulk", cpu_limit=room.cpu,
                                     ram_limit=room.ram, gpu_limit=room.gpu)
    djangoenv.bulk_queue(cluster=cluster, user=user, specs=specs, start_at=timezone.now())
    print(f"(a) one pass over {BULK:,} pending deployments on a cluster with room for all ({runs} runs)")
    rates = []
    for run in range(runs):
        reset_to_pending(cluster)
        elapsed, queries, result = timed_pass(cluster.pk)
        rates.append(len(result.starts) / elapsed)
        sql_ms = sum(float(q["time"]) for q in queries) * 1e3
        print(f"    run {run + 1}: {elapsed * 1e3:7.0f} ms, {len(result.starts):,} started, "
              f"{rates[-1]:,.0f} placements/s, {len(queries)} queries ({sql_ms:.0f} ms in SQL)")
    print("    statements of the last run:")
    for q in queries:
        print(f"      {float(q['time']) * 1e3:7.1f} ms  {q['sql'][:100]}")
    rate = statistics.median(rates)
    verdict = "met" if rate >= TARGET_PLACEMENTS_PER_S else "MISSED"
    print(f"    median {rate:,.0f} placements/s; target >= {TARGET_PLACEMENTS_PER_S:,}: {verdict}")
    return rate


def contended_cluster(user, organization, rng: random.Random):
    """(b) A cluster with about 10k pending and 2k running, at the scheduler's fixed point."""
    from clusters.models import Cluster

    specs = djangoenv.random_specs(rng, STREAM_PENDING + STREAM_RUNNING)
    # Capacity for roughly the first 2k; backfill then squeezes in a few more small ones.
    room = total(demand for _, demand in specs[:STREAM_RUNNING])
    cluster = Cluster.objects.create(organization=organization, name="contended", cpu_limit=room.cpu,
                                     ram_limit=room.ram, gpu_limit=room.gpu)
    return settle(cluster, user, specs, f"(b) {STREAM_CREATES} creates on a nearly full cluster")


def roomy_cluster(user, organization, rng: random.Random):
    """(c) A cluster running 10k deployments with room for many more: every new one starts at once."""
    from clusters.models import Cluster

    specs = djangoenv.random_specs(rng, STREAM_PENDING)
    room = total(demand for _, demand in specs)
    cluster = Cluster.objects.create(organization=organization, name="roomy", cpu_limit=room.cpu * 3,
                                     ram_limit=room.ram * 3, gpu_limit=room.gpu * 3)
    return settle(cluster, user, specs, f"(c) {STREAM_CREATES} creates on a cluster with room (the pass submit-to-running waits for)")


def settle(cluster, user, specs, title: str):
    """Queue `specs` on the cluster and run the pass that brings it to the scheduler's fixed point."""
    from django.utils import timezone

    from deployments.models import Deployment

    djangoenv.bulk_queue(cluster=cluster, user=user, specs=specs, start_at=timezone.now())
    elapsed, _, _ = timed_pass(cluster.pk)
    djangoenv.analyze()
    counts = Counter(Deployment.objects.filter(cluster=cluster).values_list("status", flat=True))
    print(f"{title}: {counts['running']:,} running, {counts['pending']:,} pending "
          f"(settling pass {elapsed * 1e3:.0f} ms)")
    return cluster


def bench_stream(cluster, user, rng: random.Random, creates: int, profile: bool) -> None:
    """`creates` x lifecycle.create_deployment, each followed in-process by its scheduling pass."""
    from deployments import lifecycle, passes
    from workload import random_demand, random_priority

    observed = []
    real_schedule_cluster = passes.schedule_cluster

    def recording_schedule_cluster(*, cluster_id):
        elapsed, queries, result = timed_pass(cluster_id, real_schedule_cluster)
        observed.append((elapsed, len(queries), result))
        return result

    # The eager task calls passes.schedule_cluster by attribute, so wrapping it observes every pass.
    passes.schedule_cluster = recording_schedule_cluster
    create_times = []
    profiler = start_profiler() if profile else None
    try:
        for i in range(creates):
            demand = random_demand(rng)
            start = time.perf_counter()
            lifecycle.create_deployment(
                cluster=cluster, created_by=user, name=f"stream-{i}", docker_image="server:2",
                priority=random_priority(rng), cpu_required=demand.cpu, ram_required=demand.ram,
                gpu_required=demand.gpu,
            )
            create_times.append(time.perf_counter() - start)
    finally:
        passes.schedule_cluster = real_schedule_cluster
    report_stream(observed, create_times)
    if profiler:
        profiler.stop()
        print(profiler.output_text())


def start_profiler():
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    profiler.start()
    return profiler


def report_stream(passes, create_times) -> None:
    if not passes:
        print("    no scheduling pass observed: does the task still call passes.schedule_cluster?")
        return
    times = [p[0] * 1e3 for p in passes]
    started = sum(len(p[2].starts) for p in passes)
    preempted = sum(len(p[2].preemptions) for p in passes)
    tenth = max(1, len(times) // 10)
    print(f"    {len(passes)} creates, each with its pass: {started} starts, {preempted} preemptions in all")
    print(f"    pass ms: p50 {percentile(times, 50):.1f}, p90 {percentile(times, 90):.1f}, "
          f"p99 {percentile(times, 99):.1f}, max {max(times):.1f}; first tenth p50 "
          f"{statistics.median(times[:tenth]):.1f}, last tenth p50 {statistics.median(times[-tenth:]):.1f}")
    create_ms = [t * 1e3 for t in create_times]
    print(f"    create_deployment + its pass, ms: p50 {percentile(create_ms, 50):.1f}, "
          f"p99 {percentile(create_ms, 99):.1f}")
    print_query_counts(passes)


def print_query_counts(passes) -> None:
    """Queries per pass, next to what the pass did, to show what the count depends on."""
    shapes = Counter(
        (queries, bool(result.starts), len({by for _, by in result.preemptions}))
        for _, queries, result in passes
    )
    print("    queries per pass (passes: queries <- starts?, distinct preemptors):")
    for (queries, starts, preemptors), n in sorted(shapes.items()):
        print(f"      {n:4} x {queries:2} queries <- starts: {'yes' if starts else 'no '}, preemptors: {preemptors}")
    counts = {queries for queries, _, _ in shapes}
    # The most queries any pass made for each number of preemptors: constant means it does not grow.
    most = {}
    for queries, _, preemptors in shapes:
        most[preemptors] = max(most.get(preemptors, 0), queries)
    working = [most[k] for k in sorted(most) if k > 0]
    grows = any(later > earlier for earlier, later in zip(working, working[1:]))
    verdict = "MISSED: more queries when a pass has more preemptors" if grows else "met"
    print(f"    queries per pass {min(counts)}..{max(counts)} (fewer only when a pass has nothing to write); "
          f"target constant: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--runs", type=int, default=3, help="repetitions of the 10k pass")
    parser.add_argument("--parts", default="abc", help="which of (a) bulk pass, (b) contended, (c) roomy to run")
    parser.add_argument("--creates", type=int, default=STREAM_CREATES)
    parser.add_argument("--profile", action="store_true", help="profile the stream of creates (pyinstrument)")
    args = parser.parse_args()

    djangoenv.setup_django(eager=True)
    print(f"scheduler on PostgreSQL, database {djangoenv.DB_NAME}")
    user, organization = djangoenv.make_owner()
    rng = random.Random(args.seed)
    if "a" in args.parts:
        bench_bulk_pass(user, organization, rng, args.runs)
    for part, make_cluster in (("b", contended_cluster), ("c", roomy_cluster)):
        if part in args.parts:
            bench_stream(make_cluster(user, organization, rng), user, rng, args.creates, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
