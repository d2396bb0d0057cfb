"""X-Request-ID: accepted when valid, otherwise replaced, and carried into the log lines of the work it causes."""
import io
import json
import logging
import re
import urllib.request

import pytest
from rest_framework_simplejwt.tokens import RefreshToken

from hypervisor_mlops.celery import app
from hypervisor_mlops.observability.logging import JsonFormatter, RequestIdFilter, request_id
from organizations.models import Role
from tests.factories import ClusterFactory, MembershipFactory
from tests.workers import Workers, wait_until

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("given", ["abc", "A.b_c-9", "x" * 128, "0"])
def test_a_valid_request_id_is_echoed(api_client, db, given):
    response = api_client.get("/healthz", HTTP_X_REQUEST_ID=given)
    assert response["X-Request-ID"] == given


@pytest.mark.parametrize("given", [None, "", "x" * 129, "has space", "semi;colon", "ünïcode", "a/b", "{json}"])
def test_a_missing_or_invalid_request_id_is_replaced_by_a_new_one(api_client, db, given):
    extra = {} if given is None else {"HTTP_X_REQUEST_ID": given}
    response = api_client.get("/api/v1/auth/me", **extra)  # a 401: errors carry it too
    assert response.status_code == 401
    assert GENERATED.fullmatch(response["X-Request-ID"])
    assert response["X-Request-ID"] != given


def test_every_response_gets_its_own_generated_id(api_client, db):
    first, second = (api_client.get("/healthz")["X-Request-ID"] for _ in range(2))
    assert first != second


def test_json_log_lines_carry_the_request_id_and_the_user(auth_client, user):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    access = logging.getLogger("hypervisor_mlops.access")
    access.addHandler(handler)
    try:
        auth_client.get("/api/v1/auth/me", HTTP_X_REQUEST_ID="trace-1")
    finally:
        access.removeHandler(handler)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["request_id"] == "trace-1" and line["user"] == user.pk
    assert {"time", "level", "logger", "message"} <= line.keys() and line["level"] == "INFO"
    assert request_id.get() is None  # nothing leaks into what this thread does next


def _json_lines(path: str) -> list[dict]:
    lines = []
    with open(path) as f:
        for raw in f:
            raw = raw.strip()
            if raw.startswith("{"):
                lines.append(json.loads(raw))
    return lines


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_request_id_follows_a_submission_from_the_api_into_the_workers_pass(tmp_path):
    membership = MembershipFactory(role=Role.DEVELOPER)
    cluster = ClusterFactory(organization=membership.organization)
    access = str(RefreshToken.for_user(membership.user).access_token)
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete(app.conf.task_default_queue, "unacked", "unacked_index")
    workers = Workers(LOG_FORMAT="json")
    with open(api_log, "w") as api_stderr, open(worker_log, "w") as worker_stderr:
        try:
            workers.start("traced", stderr=worker_stderr, loglevel="INFO")
            base_url = workers.start_api("api", 8941, stderr=api_stderr)
            body = json.dumps({"name": "traced", "cluster": cluster.pk, "docker_image": "img:1", "cpu_required": "1",
                               "ram_required": "1", "gpu_required": 0}).encode()
            request = urllib.request.Request(f"{base_url}/api/v1/deployments/", data=body, method="POST", headers={
                "Authorization": f"Bearer {access}", "Content-Type": "application/json", "X-Request-ID": "follow-me.42"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 201
                assert response.headers["X-Request-ID"] == "follow-me.42"

            def worker_logged_the_pass() -> bool:
                return any(line["message"].startswith(f"scheduling pass on cluster {cluster.pk}:")
                           for line in _json_lines(worker_log))

            wait_until(worker_logged_the_pass, timeout=30, what="the worker's log line of the pass")
        finally:
            workers.stop_all()
            app.conf.task_always_eager = previous
    passes = [line for line in _json_lines(worker_log) if line["message"].startswith("scheduling pass")]
    assert passes[0]["request_id"] == "follow-me.42"
    assert passes[0]["message"] == f"scheduling pass on cluster {cluster.pk}: 1 started, 0 preempted"
    assert passes[0]["cluster"] == cluster.pk and passes[0]["logger"] == "deployments.tasks"
    posts = [line for line in _json_lines(api_log) if line["logger"] == "hypervisor_mlops.access"
             and line["message"].startswith("POST /api/v1/deployments/")]
    assert [(line["request_id"], line["user"]) for line in posts] == [("follow-me.42", membership.user.pk)]
