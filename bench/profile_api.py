"""Profile API requests in-process (Django test client, real JWT, throttles and broker) with pyinstrument."""
import argparse
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import djangoenv  # noqa: E402
from workload import random_demand, random_priority  # noqa: E402

QUEUED = 10_000


def setup(pending: int):
    """An admin with a roomy cluster and, on a small one, `pending` queued deployments: (client, roomy id)."""
    from django.test import Client
    from django.utils import timezone
    from rest_framework_simplejwt.tokens import RefreshToken

    from clusters.models import Cluster

    user, organization = djangoenv.make_owner()
    roomy = Cluster.objects.create(organization=organization, name="roomy", cpu_limit=999999, ram_limit=999999,
                                   gpu_limit=999999)
    small = Cluster.objects.create(organization=organization, name="small", cpu_limit=16, ram_limit=64, gpu_limit=8)
    djangoenv.bulk_queue(cluster=small, user=user, specs=djangoenv.random_specs(random.Random(1), pending),
                         start_at=timezone.now())
    djangoenv.analyze()
    token = RefreshToken.for_user(user).access_token
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1"), roomy.pk


def requester(name: str, client, cluster_id: int, rng: random.Random):
    def post():
        demand = random_demand(rng)
        body = {"name": "p", "cluster": cluster_id, "docker_image": "trainer:1", "priority": random_priority(rng),
                "cpu_required": str(demand.cpu), "ram_required": str(demand.ram), "gpu_required": demand.gpu}
        return client.post("/api/v1/deployments/", body, content_type="application/json")

    return {
        "post": post,
        "clusters": lambda: client.get("/api/v1/clusters/"),
        "pending": lambda: client.get("/api/v1/deployments/", {"status": "pending"}),
    }[name]


def print_queries(captured: list[dict], requests: int) -> None:
    """SQL statements grouped by their opening, with the time each group took per request."""
    groups: dict[str, list[float]] = {}
    for query in captured:
        # Literals differ from request to request; the statement's shape is what repeats.
        shape = re.sub(r"'[^']*'|\b\d+\b", "?", " ".join(query["sql"].split()))[:110]
        groups.setdefault(shape, []).append(float(query["time"]))
    print("SQL per request (ms, count):")
    for sql, times in sorted(groups.items(), key=lambda item: -sum(item[1]))[:12]:
        print(f"  {sum(times) * 1e3 / requests:6.2f} ms  x{len(times) / requests:.1f}  {sql}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("endpoint", choices=("post", "clusters", "pending"))
    parser.add_argument("-n", type=int, default=300, help="requests to profile")
    parser.add_argument("--pending", type=int, default=QUEUED, help="deployments queued on the small cluster")
    parser.add_argument("--warmup", type=int, default=20, help="unprofiled requests first")
    parser.add_argument("--all", action="store_true", help="show library frames in the call tree")
    parser.add_argument("--flat", action="store_true", help="functions by their own time instead of a tree")
    args = parser.parse_args()

    djangoenv.setup_django(eager=False)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from pyinstrument import Profiler

    client, cluster_id = setup(args.pending)
    request = requester(args.endpoint, client, cluster_id, random.Random(7))
    for _ in range(args.warmup):  # warm caches, connections and lazy imports
        assert request().status_code < 300
    times = []
    profiler = Profiler(interval=0.0005)
    with CaptureQueriesContext(connection) as queries:
        with profiler:
            for _ in range(args.n):
                start = time.perf_counter()
                response = request()
                times.append(time.perf_counter() - start)
                assert response.status_code < 300, response.content[:300]
    print(f"{args.endpoint}: {args.n} requests in-process, median {statistics.median(times) * 1e3:.2f} ms, "
          f"{len(queries) / args.n:.1f} SQL queries per request")
    print_queries(queries.captured_queries, args.n)
    if args.flat:
        print(profiler.output_text(flat=True, processor_options={"filter_threshold": 0.01}))
    else:
        # --all opens library frames too (Django, DRF), pruned to those above 2% of the time.
        print(profiler.output_text(show_all=args.all, processor_options={"filter_threshold": 0.02}))
    djangoenv.end_sessions()
    djangoenv.flush_redis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
