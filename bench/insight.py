"""Benchmark of scheduling insight on PostgreSQL: a page of pending deployments with their `scheduling`
objects on a cluster with 100,000 pending, and the dry run on one with 10,000 pending and 2,000 running.

In-process through Django's test client with a real JWT, as a gunicorn worker would serve them; SQL
queries counted per request.
"""
import argparse
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import djangoenv  # noqa: E402
from workload import percentile  # noqa: E402

TARGET_MS = 50


def timed(client, method: str, path: str, body=None, runs: int = 30) -> tuple[list[float], int]:
    """Milliseconds per request over `runs` (after one warm-up), and the SQL queries of one request."""
    from django.db import connection

    call = getattr(client, method)
    response = call(path, body, format="json") if body is not None else call(path)
    assert response.status_code == 200, response.content[:300]
    # Counted by a wrapper: the test client's request_started signal empties Django's own query log.
    queries = []
    with connection.execute_wrapper(lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)):
        call(path, body, format="json") if body is not None else call(path)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call(path, body, format="json") if body is not None else call(path)
        times.append((time.perf_counter() - start) * 1000)
    return times, len(queries)


def vacuum() -> None:
    """What autovacuum does after a bulk load: statistics, and the visibility map index-only scans need."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")


def seed_running(cluster, user, count: int, rng: random.Random) -> None:
    from django.utils import timezone

    from deployments.models import Deployment

    now, project = timezone.now(), cluster.organization.default_project
    Deployment.objects.bulk_create(
        (Deployment(name=f"run-{i}", cluster=cluster, project=project, docker_image="img", priority=rng.randint(-5, 5),
                    cpu_required=1, ram_required=1, status="running", started_at=now - timedelta(seconds=i),
                    created_by=user, created_at=now - timedelta(hours=1)) for i in range(count)),
        batch_size=5_000,
    )
    cluster.cpu_allocated = cluster.ram_allocated = count
    cluster.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10x smaller queues")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    djangoenv.setup_django(eager=True)
    from django.utils import timezone
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import RefreshToken

    from clusters.models import Cluster

    rng = random.Random(7)
    user, organization = djangoenv.make_owner()
    client = APIClient(HTTP_HOST="127.0.0.1")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")

    deep = Cluster.objects.create(organization=organization, name="deep", cpu_limit=64, ram_limit=256, gpu_limit=8)
    pending = 100_000 // scale
    djangoenv.bulk_queue(cluster=deep, user=user, specs=[(rng.randint(-5, 5), spec) for _, spec in
                                                         djangoenv.random_specs(rng, pending)],
                         start_at=timezone.now() - timedelta(days=1))
    seed_running(deep, user, 60, rng)
    vacuum()
    times, queries = timed(client, "get", f"/api/v1/deployments/?status=pending&cluster={deep.pk}")
    print(f"GET /deployments/?status=pending&cluster=X (page of 50), {pending:,} pending: "
          f"p50 {statistics.median(times):.1f} ms, p99 {percentile(times, 99):.1f} ms, {queries} queries")
    small = Cluster.objects.create(organization=organization, name="small", cpu_limit=64, ram_limit=256, gpu_limit=8)
    djangoenv.bulk_queue(cluster=small, user=user, specs=djangoenv.random_specs(rng, 200),
                         start_at=timezone.now() - timedelta(days=1))
    vacuum()
    _, small_queries = timed(client, "get", f"/api/v1/deployments/?status=pending&cluster={small.pk}", runs=1)
    print(f"  queries per page with 200 pending: {small_queries} (constant: {small_queries == queries})")

    busy = Cluster.objects.create(organization=organization, name="busy", cpu_limit=2_000, ram_limit=2_000,
                                  gpu_limit=8)
    seed_running(busy, user, 2_000 // scale, rng)
    djangoenv.bulk_queue(cluster=busy, user=user, specs=[(rng.randint(-5, 5), spec) for _, spec in
                                                         djangoenv.random_specs(rng, 10_000 // scale)],
                         start_at=timezone.now() - timedelta(days=1))
    vacuum()
    body = {"name": "what-if", "cluster": busy.pk, "docker_image": "img", "cpu_required": "4",
            "ram_required": "4", "priority": 3}
    times, queries = timed(client, "post", "/api/v1/deployments/dry-run/", body)
    print(f"POST /deployments/dry-run/, {10_000 // scale:,} pending x {2_000 // scale:,} running: "
          f"p50 {statistics.median(times):.1f} ms, p99 {percentile(times, 99):.1f} ms, {queries} queries")
    print(f"targets: both p50 <= {TARGET_MS} ms; queries per page constant in the number pending")
    djangoenv.end_sessions()


if __name__ == "__main__":
    main()
