"""Isolated environment for the Django benchmarks: their own database, Redis DBs and port, and seeded data."""
import os
import random
from datetime import timedelta

PG_SERVER = "postgres://postgres@127.0.0.1:5432"
DB_NAME = os.environ.get("BENCH_DB", "hypervisor_bench")
# Redis DBs 0 and 1 and the database `hypervisor` belong to the test suite others run on this machine.
ENV = {
    "DJANGO_SETTINGS_MODULE": "hypervisor_mlops.settings",
    "DATABASE_URL": f"{PG_SERVER}/{DB_NAME}",
    "SECRET_KEY": "bench",
    "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/10"),
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "THROTTLE_USER_RATE": "1000000/min",
    "THROTTLE_ANON_RATE": "1000000/min",
    "THROTTLE_AUTH_RATE": "1000000/min",
    "LOG_LEVEL": "WARNING",
    "DEBUG": "false",
}


def apply_env(**overrides: str) -> dict[str, str]:
    """Put the benchmark settings into os.environ (before Django loads) and return them."""
    env = ENV | overrides
    os.environ.update(env)
    return env


def recreate_database() -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        # FORCE ends connections left over from an earlier, interrupted run of ours.
        cur.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{DB_NAME}"')
        # A safety net: a runaway query fails (a 500 in the figures) instead of stalling the run for minutes,
        # and a query whose client went away stops within a second.
        cur.execute(f'ALTER DATABASE "{DB_NAME}" SET statement_timeout = \'15s\'')
        cur.execute(f'ALTER DATABASE "{DB_NAME}" SET client_connection_check_interval = \'1s\'')
    conn.close()


def end_sessions() -> None:
    """End every session on the benchmark database: queries a stopped server left running, and our own."""
    import psycopg2
    from django.db import connection

    connection.close()
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (DB_NAME,))
    conn.close()


def setup_django(*, eager: bool) -> None:
    """A fresh, migrated benchmark database, with Django configured on it in this process."""
    apply_env(CELERY_TASK_ALWAYS_EAGER="true" if eager else "false")
    recreate_database()
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def analyze() -> None:
    """Fresh planner statistics, as autovacuum would have after a bulk load, so runs are comparable."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("ANALYZE")


def make_owner(username: str = "bench"):
    """A user who administers an organization: (user, organization)."""
    from accounts.models import User
    from organizations.services import create_organization

    user = User.objects.create_user(username=username, email=f"{username}@example.com", password="x" * 20)
    return user, create_organization(name=f"{username}-org", creator=user)


def bulk_queue(*, cluster, user, specs, start_at):
    """Insert pending deployments (priority, demand) with their 'queued' events; returns their ids.

    The service creates them one at a time through lifecycle.create_deployment; for setup a bulk insert of
    the same rows is equivalent and takes seconds instead of minutes.
    """
    from deployments.models import Deployment, DeploymentEvent, EventKind

    project = cluster.organization.default_project
    rows = [
        Deployment(
            name=f"job-{i}", cluster=cluster, project=project, docker_image="trainer:1", priority=priority,
            cpu_required=demand.cpu, ram_required=demand.ram, gpu_required=demand.gpu,
            created_by=user, created_at=start_at + timedelta(milliseconds=i),
        )
        for i, (priority, demand) in enumerate(specs)
    ]
    created = Deployment.objects.bulk_create(rows, batch_size=5_000)
    DeploymentEvent.objects.bulk_create(
        (DeploymentEvent(deployment=d, kind=EventKind.QUEUED, at=d.created_at,
                         message=f"Queued on cluster '{cluster.name}' with priority {d.priority}.")
         for d in created),
        batch_size=5_000,
    )
    return [d.pk for d in created]


def random_specs(rng: random.Random, count: int):
    from workload import random_demand, random_priority

    return [(random_priority(rng), random_demand(rng)) for _ in range(count)]


def flush_redis() -> None:
    """Empty the benchmark's own Redis DBs (broker and cache), so no run inherits another's backlog."""
    import redis

    for url in (ENV["CELERY_BROKER_URL"], ENV["REDIS_URL"]):
        redis.Redis.from_url(url).flushdb()
