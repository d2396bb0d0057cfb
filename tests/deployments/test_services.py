"""Services through the API: `ports` and `health_check`, their validation and when they may change, on a
ledger-only cluster (tests/agents/test_services.py drives them through an agent's reports)."""
import pytest

from deployments.models import Deployment
from tests.deployments.api import DEPLOYMENTS, get, submit

pytestmark = pytest.mark.django_db(transaction=True)

HTTP_CHECK = {"http": {"port": 8080, "path": "/healthz"}, "period_seconds": 2}


def post(client, cluster, **fields):
    return client.post(DEPLOYMENTS, {"name": "web", "cluster": cluster.pk, "docker_image": "img:1", **fields},
                       format="json")


def test_ports_and_a_check_default_to_none_and_read_back_with_the_checks_defaults(dev, cluster):
    plain = get(dev, submit(dev, cluster))
    assert (plain["ports"], plain["health_check"]) == ([], None)
    response = post(dev, cluster, ports=[8080, 9090], health_check=HTTP_CHECK)
    assert response.status_code == 201, response.content
    assert response.json()["ports"] == [8080, 9090]
    assert response.json()["health_check"] == {"http": {"port": 8080, "path": "/healthz"}, "period_seconds": 2,
                                               "timeout_seconds": 2, "failure_threshold": 3,
                                               "initial_delay_seconds": 0}
    tcp = post(dev, cluster, ports=[5432], health_check={"tcp": {"port": 5432}}).json()["health_check"]
    assert tcp["tcp"] == {"port": 5432} and "http" not in tcp and "exec" not in tcp
    assert post(dev, cluster, health_check={"exec": ["cat", "/tmp/ready"]}).json()["health_check"]["exec"] == [
        "cat", "/tmp/ready"]
    assert post(dev, cluster, ports=[80], health_check={"http": {"port": 80}}).json()["health_check"]["http"] == {
        "port": 80, "path": "/"}


@pytest.mark.parametrize("fields, field", [
    ({"ports": [0]}, "ports"), ({"ports": [65536]}, "ports"), ({"ports": [80, 80]}, "ports"),
    ({"ports": list(range(1, 18))}, "ports"), ({"ports": "80"}, "ports"), ({"ports": [True]}, "ports"),
    ({"ports": None}, "ports"),
    ({"health_check": {}}, "health_check"),
    ({"ports": [80], "health_check": {"http": {"port": 80}, "tcp": {"port": 80}}}, "health_check"),
    ({"ports": [80], "health_check": {"http": {"port": 81}}}, "health_check"),
    ({"health_check": {"tcp": {"port": 80}}}, "health_check"),
    ({"ports": [80], "health_check": {"http": {"port": 80, "path": "healthz"}}}, "health_check"),
    ({"ports": [80], "health_check": {"http": {"port": 80, "path": "/a b"}}}, "health_check"),
    ({"ports": [80], "health_check": {"http": {"port": 80}, "period_seconds": 0}}, "health_check"),
    ({"ports": [80], "health_check": {"http": {"port": 80}, "perod_seconds": 5}}, "health_check"),
    ({"ports": [80], "health_check": {"http": {"port": 80}, "failure_threshold": 101}}, "health_check"),
    ({"ports": [80], "health_check": {"http": {"port": 80}, "initial_delay_seconds": -1}}, "health_check"),
    ({"health_check": {"exec": []}}, "health_check"), ({"health_check": {"exec": "true"}}, "health_check"),
    ({"health_check": {"exec": ["true", 1]}}, "health_check"), ({"health_check": "http"}, "health_check"),
])
def test_a_bad_port_or_check_is_a_400_naming_the_field_and_nothing_is_created(dev, cluster, fields, field):
    response = post(dev, cluster, **fields)
    assert response.status_code == 400 and set(response.json()) == {field}, response.content
    assert not Deployment.objects.exists()


def test_a_check_port_missing_from_ports_names_the_port(dev, cluster):
    response = post(dev, cluster, ports=[80], health_check={"tcp": {"port": 8080}})
    assert response.json() == {"health_check": ["The health check's port 8080 must be one of ports ([80])."]}


def test_ports_and_the_check_are_editable_until_it_first_starts(dev, cluster):
    running = submit(dev, cluster, cpu="4", ports=[80])
    waiting = submit(dev, cluster, cpu="4", ports=[80])
    changed = dev.patch(f"{DEPLOYMENTS}{waiting}/", {"ports": [80, 443], "health_check": {"tcp": {"port": 443}}},
                        format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["ports"] == [80, 443] and changed.json()["health_check"]["tcp"] == {"port": 443}
    # The check is validated against the ports it will have: dropping its port is refused.
    dropped = dev.patch(f"{DEPLOYMENTS}{waiting}/", {"ports": [80]}, format="json")
    assert dropped.status_code == 400 and "ports" in dropped.json()
    assert dev.patch(f"{DEPLOYMENTS}{waiting}/", {"health_check": None}, format="json").json()["health_check"] is None
    refused = dev.patch(f"{DEPLOYMENTS}{running}/", {"ports": [8080]}, format="json")
    assert refused.status_code == 409 and "ports" in refused.json()["detail"]
    assert get(dev, running)["ports"] == [80]


def test_on_a_ledger_only_cluster_a_service_is_accepted_and_has_no_runtime(dev, cluster):
    pk = post(dev, cluster, ports=[80], health_check={"http": {"port": 80}}).json()["id"]
    body = get(dev, pk)
    assert body["status"] == "running" and body["runtime"] is None
    assert dev.get(f"{DEPLOYMENTS}?ready=true").json()["count"] == 0
    assert [d["id"] for d in dev.get(f"{DEPLOYMENTS}?ready=false").json()["results"]] == [pk]
    assert dev.get(f"{DEPLOYMENTS}?ready=maybe").status_code == 400


def test_the_schema_documents_the_service_fields(schema):
    deployment = schema["definitions"]["Deployment"]["properties"]
    assert deployment["ports"]["maxItems"] == 16
    assert set(schema["definitions"]["HealthCheck"]["properties"]) == {
        "http", "tcp", "exec", "period_seconds", "timeout_seconds", "failure_threshold", "initial_delay_seconds"}
    runtime = schema["definitions"]["Runtime"]["properties"]
    assert {"endpoints", "ready"} <= set(runtime)
