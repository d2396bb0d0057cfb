"""The agent's wire format (cluster_agent/protocol.py) against the server's serializers and its sync view:
what the agent sends is what the server reads, and what the server answers is what the agent reads."""
import json
from decimal import Decimal

import pytest
from django.conf import settings

from agents.models import Agent
from agents.serializers import (
    DesiredDeploymentSerializer,
    LogChunkSerializer,
    SeenContainerSerializer,
    StartFailureSerializer,
    SyncRequestSerializer,
)
from cluster_agent import protocol
from cluster_agent.decisions import Desired
from cluster_agent.health import HealthCheck, Verdict
from deployments.reports import SeenContainer, StartFailure
from tests.agents.sync import SYNC, agent_client, register
from tests.deployments.api import submit

REPORT = protocol.sync_request(
    hostname="gpu-host", version="1.2.3", gpus=[0, 1],
    containers=[
        protocol.seen_container(deployment=7, attempt=2, container="c" * 64, state="exited", exit_code=3),
        protocol.seen_container(deployment=8, attempt=1, container="d" * 64, state="running", exit_code=None,
                                ports=((8080, 40001),), verdict=Verdict(True, 0, "HTTP 200 from /")),
    ],
    start_failures=[protocol.start_failure(deployment=9, attempt=1, error="pull access denied")],
    logs=[protocol.log_chunk(deployment=7, attempt=2, offset=5, data=b"\xffhi\n")],
    advertise_address="gpu-host.example",
)


def test_every_field_the_agent_sends_is_one_the_server_declares_and_the_other_way_round():
    assert set(REPORT) == set(SyncRequestSerializer().fields)
    assert set(REPORT["containers"][0]) == set(SeenContainerSerializer().fields)
    assert set(REPORT["start_failures"][0]) == set(StartFailureSerializer().fields)
    assert set(REPORT["logs"][0]) == set(LogChunkSerializer().fields)


def test_the_server_reads_what_the_agent_reports():
    report = SyncRequestSerializer(data=json.loads(json.dumps(REPORT)))
    assert report.is_valid(), report.errors
    assert report.validated_data["hostname"] == "gpu-host" and report.validated_data["gpus"] == [0, 1]
    assert report.seen() == [SeenContainer(7, 2, "c" * 64, "exited", 3),
                             SeenContainer(8, 1, "d" * 64, "running", None, ((8080, 40001),), True, "HTTP 200 from /")]
    assert report.host() == "gpu-host.example"
    assert report.failures() == [StartFailure(9, 1, "pull access denied")]
    assert report.chunks() == [(7, 2, 5, b"\xffhi\n")]


def test_an_agent_that_has_not_looked_yet_reports_no_picture_rather_than_an_empty_one():
    body = protocol.sync_request(hostname="h", version="v", gpus=[], containers=None, start_failures=[], logs=[])
    report = SyncRequestSerializer(data=body)
    assert report.is_valid(), report.errors
    assert report.seen() is None


def test_an_exit_code_is_reported_only_for_an_exited_container():
    assert protocol.seen_container(deployment=1, attempt=1, container="c", state="running", exit_code=0)[
        "exit_code"] is None


@pytest.mark.django_db(transaction=True)
def test_the_agent_reads_what_the_sync_view_answers(admin, cluster):
    client = agent_client(register(admin, cluster)["token"])
    pk = submit(admin, cluster, name="train", cpu="0.5", ram="0.25", gpu=1, command=["sh", "-c", "echo hi"],
                env={"K": "v"}, stop_grace_seconds=5, ports=[8080, 9090],
                health_check={"http": {"port": 8080, "path": "/ok"}, "period_seconds": 3})
    body = protocol.sync_request(hostname="h", version="v", gpus=[0, 1], containers=[], start_failures=[],
                                 logs=[protocol.log_chunk(deployment=pk, attempt=1, offset=0, data=b"hello\n")])
    response = client.post(SYNC, body, format="json")
    assert response.status_code == 200, response.content
    answer = response.json()

    assert set(answer["deployments"][0]) == set(DesiredDeploymentSerializer().fields)
    assert protocol.desired_deployments(answer) == [
        Desired(pk, 1, "train", "registry/img:1", ("sh", "-c", "echo hi"), {"K": "v"}, Decimal("0.5"),
                Decimal("0.25"), 1, 5, None, (8080, 9090), {},
                HealthCheck("http", port=8080, path="/ok", period=3, timeout=2, failure_threshold=3, initial_delay=0))
    ]
    agent = Agent.objects.get(cluster=cluster)
    assert protocol.identity(answer) == (str(agent.uid), cluster.pk)
    assert protocol.poll_seconds(answer) == settings.AGENT_POLL_SECONDS
    assert protocol.held_output(answer) == [(pk, 1, len(b"hello\n"))]


def test_desired_reads_decimals_exactly_and_a_null_command_as_the_images_own():
    desired = protocol.desired({
        "id": 12, "attempt": 3, "name": "train", "image": "img:1", "command": ["sh", "-c", "echo hi"],
        "env": {"K": "v"}, "cpu": "0.500", "ram": "0.250", "gpu": 1, "stop_grace_seconds": 5,
    })
    assert desired == Desired(12, 3, "train", "img:1", ("sh", "-c", "echo hi"), {"K": "v"},
                              Decimal("0.5"), Decimal("0.25"), 1, 5)
    assert protocol.desired({"id": 1, "attempt": 1, "image": "i", "command": None}).command is None
