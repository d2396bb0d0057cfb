"""Services on real containers: a busybox httpd reached at the URL of `runtime.endpoints`, health checks
(http, tcp, exec) turning `runtime.ready` with events, a hanging check that delays nothing else, restarts in
place on the same host port, and an agent restarted under its services; real bin/agent processes against
gunicorn on PostgreSQL."""
import signal
import urllib.error
import urllib.request

import pytest

from tests.agent.steps import the_container, uid_of_cluster
from tests.deployments.api import DEPLOYMENTS, get
from tests.factories import ClusterFactory
from tests.workers import Workers, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PORT = 8935
# Serves /www on port 8080 in the foreground, with an index page saying `$PAGE`.
HTTPD = "mkdir -p /www && echo \"$PAGE\" > /www/index.html && exec httpd -f -p 8080 -h /www"


@pytest.fixture(scope="module")
def server():
    workers = Workers(RESTART_BACKOFF_SECONDS="1")
    try:
        url = workers.start_api("api", PORT)
        workers.start("worker")
        yield url
    finally:
        workers.stop_all()


@pytest.fixture
def cluster(organization):
    return ClusterFactory(organization=organization, cpu_limit="4", ram_limit="4", gpu_limit=0)


def serve(client, cluster, script=HTTPD, *, page="hello", ports=(8080,), **fields) -> int:
    body = {"name": "web", "cluster": cluster.pk, "docker_image": "localhost/busybox:test", "cpu_required": "0.25",
            "ram_required": "0.125", "stop_grace_seconds": 1, "command": ["sh", "-c", script],
            "env": {"PAGE": page}, "ports": list(ports), **fields}
    response = client.post(DEPLOYMENTS, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def endpoints(client, pk, timeout=30) -> list[dict]:
    wait_until(lambda: (get(client, pk)["runtime"] or {}).get("endpoints"), timeout=timeout,
               what=f"#{pk}'s endpoints")
    return get(client, pk)["runtime"]["endpoints"]


def fetch(url: str) -> str:
    """The page at `url`, once the server in the container answers (it may still be starting)."""
    answers = []

    def answered() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                answers.append(response.read().decode())
            return True
        except (urllib.error.URLError, ConnectionError):
            return False

    wait_until(answered, timeout=15, what=f"an answer from {url}")
    return answers[-1]


def readiness(client, pk, ready: bool, timeout=30) -> dict:
    wait_until(lambda: (get(client, pk)["runtime"] or {}).get("ready") is ready, timeout=timeout,
               what=f"#{pk} to be {'ready' if ready else 'not ready'}")
    return get(client, pk)


def health_events(client, pk) -> list[tuple[str, str]]:
    return [(e["kind"], e["message"]) for e in client.get(f"{DEPLOYMENTS}{pk}/events/").json()["results"]
            if e["kind"] in ("ready", "not_ready")]


def in_container(runtime, cluster, pk, script: str) -> None:
    """Changes what a service serves, as its own process could."""
    code, output = the_container(runtime, uid_of_cluster(cluster), pk).exec_run(["sh", "-c", script])
    assert code == 0, output


def test_a_web_server_serves_at_its_endpoint_url(dev, cluster, start_agent):
    start_agent("", "--advertise-address", "127.0.0.1")
    pk = serve(dev, cluster, page="hello from the service")
    [endpoint] = endpoints(dev, pk)
    assert endpoint["port"] == 8080 and endpoint["host"] == "127.0.0.1"
    assert endpoint["url"] == f"http://127.0.0.1:{endpoint['host_port']}"
    assert fetch(endpoint["url"]) == "hello from the service\n"
    assert get(dev, pk)["runtime"]["ready"] is None  # no check
    dev.post(f"{DEPLOYMENTS}{pk}/complete/")
    wait_until(lambda: get(dev, pk)["runtime"]["endpoints"] == [], timeout=15, what="the endpoints to go")


def test_the_default_host_is_the_agents_host_name_and_two_services_on_one_port_get_their_own(dev, cluster,
                                                                                            start_agent):
    import socket
    start_agent()
    first, second = serve(dev, cluster, page="first"), serve(dev, cluster, page="second")
    [one], [two] = endpoints(dev, first), endpoints(dev, second)
    assert one["host"] == two["host"] == socket.gethostname()
    assert one["port"] == two["port"] == 8080 and one["host_port"] != two["host_port"]
    assert (fetch(one["url"]), fetch(two["url"])) == ("first\n", "second\n")


def test_an_http_check_turns_ready_when_its_path_answers_and_not_ready_when_it_stops(dev, cluster, start_agent,
                                                                                   container_runtime):
    start_agent()
    pk = serve(dev, cluster, health_check={"http": {"port": 8080, "path": "/healthz"}, "period_seconds": 1,
                                           "timeout_seconds": 1, "failure_threshold": 2})
    endpoints(dev, pk)
    assert readiness(dev, pk, False)["status"] == "running"  # 404 until the file appears
    in_container(container_runtime, cluster, pk, "echo ok > /www/healthz")
    readiness(dev, pk, True)
    assert [d["id"] for d in dev.get(f"{DEPLOYMENTS}?ready=true").json()["results"]] == [pk]
    in_container(container_runtime, cluster, pk, "rm /www/healthz")
    readiness(dev, pk, False)
    in_container(container_runtime, cluster, pk, "echo ok > /www/healthz")
    readiness(dev, pk, True)
    assert health_events(dev, pk) == [("ready", "Ready: HTTP 200 from /healthz."),
                                      ("not_ready", "Not ready: HTTP 404 from /healthz."),
                                      ("ready", "Ready: HTTP 200 from /healthz.")]


def test_tcp_and_exec_checks(dev, cluster, start_agent, container_runtime):
    start_agent()
    # The server listens only after a while: connections are refused until then.
    tcp = serve(dev, cluster, "sleep 2; " + HTTPD, health_check={"tcp": {"port": 8080}, "period_seconds": 1})
    exec_checked = serve(dev, cluster, health_check={"exec": ["test", "-f", "/www/ready"], "period_seconds": 1,
                                                      "failure_threshold": 1})
    assert readiness(dev, tcp, True)["runtime"]["endpoints"]
    assert readiness(dev, exec_checked, False)["status"] == "running"
    in_container(container_runtime, cluster, exec_checked, "touch /www/ready")
    readiness(dev, exec_checked, True)
    in_container(container_runtime, cluster, exec_checked, "rm /www/ready")
    readiness(dev, exec_checked, False)
    assert health_events(dev, exec_checked)[-1] == ("not_ready", "Not ready: test exited with code 1.")


def test_a_check_that_hangs_delays_nothing_else(dev, cluster, start_agent):
    start_agent()
    # Accepts connections and never answers: each HTTP probe hangs for its whole timeout.
    hanging = serve(dev, cluster, "exec nc -ll -p 8080 -e sleep 600", health_check={
        "http": {"port": 8080}, "period_seconds": 1, "timeout_seconds": 60})
    slow_exec = serve(dev, cluster, health_check={"exec": ["sleep", "600"], "period_seconds": 1,
                                                   "timeout_seconds": 60})
    endpoints(dev, hanging)
    endpoints(dev, slow_exec)
    other = serve(dev, cluster, page="other")
    # Well inside the hanging probes' 60 s: the loop and the other checks went on meanwhile.
    assert fetch(endpoints(dev, other, timeout=20)[0]["url"]) == "other\n"
    for pk in (hanging, slow_exec):
        body = get(dev, pk)
        assert (body["status"], body["runtime"]["state"], body["runtime"]["ready"]) == ("running", "running", False)


def test_a_restart_in_place_keeps_its_host_port_and_is_not_ready_until_it_passes_again(dev, cluster, start_agent):
    start_agent()
    # Serves for a few seconds, then exits with 1: its policy restarts it.
    script = "mkdir -p /www && echo up > /www/index.html && httpd -p 8080 -h /www && sleep 4 && exit 1"
    pk = serve(dev, cluster, script, restart_policy="always", health_check={"http": {"port": 8080},
                                                                             "period_seconds": 1})
    [before] = endpoints(dev, pk)
    readiness(dev, pk, True)
    wait_until(lambda: get(dev, pk)["restart_count"] >= 1, timeout=30, what="a restart")
    readiness(dev, pk, True)
    [after] = endpoints(dev, pk)
    assert after["host_port"] == before["host_port"] and fetch(after["url"]) == "up\n"
    assert health_events(dev, pk)[:3] == [("ready", "Ready: HTTP 200 from /."),
                                          ("not_ready", "Not ready: its container exited with code 1."),
                                          ("ready", "Ready: HTTP 200 from /.")]


def test_a_restarted_agent_keeps_the_endpoints_and_readiness_of_what_it_adopts(dev, cluster, start_agent):
    agent = start_agent()
    pk = serve(dev, cluster, health_check={"http": {"port": 8080}, "period_seconds": 1})
    [endpoint] = endpoints(dev, pk)
    readiness(dev, pk, True)
    agent.signal(signal.SIGTERM)
    assert agent.wait(10) == 0
    start_agent()
    assert fetch(endpoint["url"]) == "hello\n"
    body = readiness(dev, pk, True)
    assert body["runtime"]["endpoints"] == [endpoint] and body["runtime"]["attempt"] == 1
    assert health_events(dev, pk) == [("ready", "Ready: HTTP 200 from /.")]
