"""A real Prometheus scrapes gunicorn (2 workers) and a Celery worker; PromQL answers what was done."""
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from rest_framework_simplejwt.tokens import RefreshToken

from deployments.models import DeploymentEvent, EventKind
from hypervisor_mlops.celery import app
from organizations.models import Role
from tests.factories import ClusterFactory, MembershipFactory
from tests.workers import Workers, wait_for_idle_queue, wait_until

TOKEN = "prometheus-scrape-token"
API_PORT, PROMETHEUS_PORT = 8942, 8943
ALERTS = settings.BASE_DIR / "ops" / "prometheus" / "alerts.yml"
DASHBOARD = settings.BASE_DIR / "ops" / "grafana" / "hypervisor.json"


def test_the_alerting_rules_pass_promtool():
    result = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _prometheus_config(path) -> None:
    path.write_text(f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
rule_files: ["{ALERTS}"]
scrape_configs:
  - job_name: hypervisor
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials: {TOKEN}
    static_configs:
      - targets: ["127.0.0.1:{API_PORT}"]
""")


def query(promql: str) -> float | None:
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            result = json.load(response)["data"]["result"]
    except OSError:
        return None
    return float(result[0]["value"][1]) if result else None


def query_status(promql: str) -> str:
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.load(response)["status"]
    except urllib.error.HTTPError as error:
        return json.load(error)["error"]


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"].replace("$cluster", ".*").replace("$__rate_interval", "1m")
            for panel in panels for target in panel["targets"]]


def _call(base_url: str, access: str, path: str, body: dict | None = None) -> int:
    request = urllib.request.Request(f"{base_url}{path}", method="POST", data=json.dumps(body or {}).encode(),
                                     headers={"Authorization": f"Bearer {access}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response).get("id", response.status)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_prometheus_scrapes_exact_counts_across_gunicorn_workers_and_a_celery_worker(tmp_path):
    membership = MembershipFactory(role=Role.DEVELOPER)
    cluster = ClusterFactory(organization=membership.organization, cpu_limit="64", ram_limit="64", gpu_limit=2)
    access = str(RefreshToken.for_user(membership.user).access_token)
    multiproc = tmp_path / "metrics"
    multiproc.mkdir()
    config = tmp_path / "prometheus.yml"
    _prometheus_config(config)

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete(app.conf.task_default_queue, "unacked", "unacked_index")
    workers = Workers(METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(multiproc))
    prometheus = None
    try:
        workers.start("metrics-worker")
        base_url = workers.start_api("api", API_PORT)
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        submissions = 12
        body = {"name": "job", "cluster": cluster.pk, "docker_image": "img:1", "cpu_required": "1",
                "ram_required": "1", "gpu_required": 1}
        # Several clients at once, so both gunicorn workers answer some of them.
        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(lambda _: _call(base_url, access, "/api/v1/deployments/", body), range(submissions)))
        wait_for_idle_queue()
        running = [pk for pk in ids if DeploymentEvent.objects.filter(deployment_id=pk, kind=EventKind.SCHEDULED)]
        assert len(running) == 2
        _call(base_url, access, f"/api/v1/deployments/{running[0]}/complete/")
        wait_for_idle_queue()
        starts = DeploymentEvent.objects.filter(kind=EventKind.SCHEDULED).count()
        assert starts == 3

        expected = {
            'sum(hypervisor_http_requests_total{route="deployment-list",method="POST",status="201"})': submissions,
            'sum(hypervisor_http_requests_total{route="deployment-complete",method="POST",status="200"})': 1,
            f'hypervisor_admissions_total{{cluster="{cluster.pk}"}}': starts,
            f'hypervisor_deployments{{cluster="{cluster.pk}",status="pending"}}': submissions - 3,
            f'hypervisor_deployments{{cluster="{cluster.pk}",status="completed"}}': 1,
            f'hypervisor_cluster_allocated{{cluster="{cluster.pk}",resource="gpu"}}': 2,
            f'hypervisor_pending_deployments{{cluster="{cluster.pk}",reason="resources"}}': submissions - 3,
            "hypervisor_admission_wait_seconds_count": starts,
            # Only the Celery worker runs passes here (the API enqueues them): its observations are in the scrape.
            "sum(hypervisor_scheduling_pass_seconds_count) >= 2": None,
            "hypervisor_ledger_drift_total": 0,
            'up{job="hypervisor"}': 1,
        }

        def agreed() -> bool:
            return all((query(q) is not None) if v is None else query(q) == v for q, v in expected.items())

        wait_until(agreed, timeout=60, what="Prometheus to scrape the expected values", interval=0.5)
        assert {q: query(q) for q in expected if expected[q] is not None} == {
            q: v for q, v in expected.items() if v is not None}
        # Every query of the dashboard is valid PromQL against the real series.
        assert {q: query_status(q) for q in dashboard_queries()} == {q: "success" for q in dashboard_queries()}
        # Two gunicorn workers and the Celery worker all wrote their share of the multiprocess files.
        assert len({path.name.split("_")[-1] for path in multiproc.glob("*.db")}) >= 3
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=15)
        workers.stop_all()
        app.conf.task_always_eager = previous
