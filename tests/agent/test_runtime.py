"""The agent's Docker shell and loop against a real runtime (a private Podman service)."""
import base64
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cluster_agent.client import Refused
from cluster_agent.decisions import Desired
from cluster_agent.logs import LogFollower
from cluster_agent.loop import Agent
from cluster_agent.runtime import Runtime, StartFailed

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], object], seconds: float = 15) -> object:
    deadline = time.monotonic() + seconds
    while not (result := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return result


@pytest.fixture
def runtime(container_runtime, monkeypatch) -> Runtime:
    monkeypatch.setenv("DOCKER_HOST", container_runtime.docker_host)
    return Runtime.from_env()


def test_podman_is_recognised_as_dropping_followed_log_lines(runtime):
    assert runtime.lossless_follow is False


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex


def shell(deployment: int, script: str, attempt: int = 1, **fields) -> Desired:
    return Desired(deployment, attempt, image="localhost/busybox:test", command=("sh", "-c", script), **fields)


def only(runtime: Runtime, uid: str):
    [observed] = wait_until(lambda: runtime.list(uid))
    return observed


def test_start_applies_limits_labels_and_gpu_environment(runtime, container_runtime, uid):
    want = shell(12, "sleep 30", 3, env={"K": "v", "CUDA_VISIBLE_DEVICES": "7"}, cpu=Decimal("0.500"),
                 ram=Decimal("0.250"), gpu=2, stop_grace_seconds=4)
    runtime.start(want, (0, 1), uid=uid, cluster=7)
    [container] = container_runtime.containers(f"hypervisor.agent={uid}")
    assert container.name == f"hv-12-3-{uid[:8]}"
    assert container.status == "running"
    assert container.attrs["HostConfig"]["NanoCpus"] == 500_000_000
    assert container.attrs["HostConfig"]["Memory"] == 2**28
    assert {"K=v", "NVIDIA_VISIBLE_DEVICES=0,1", "CUDA_VISIBLE_DEVICES=0,1"} <= set(container.attrs["Config"]["Env"])
    assert {
        "hypervisor.agent": uid, "hypervisor.deployment": "12", "hypervisor.attempt": "3",
        "hypervisor.gpus": "0,1", "hypervisor.stop-grace": "4", "hypervisor.cluster": "7",
    }.items() <= container.labels.items()
    assert only(runtime, uid).gpus == (0, 1)
    runtime.remove(container.id)


def test_start_without_gpus_or_limits_hides_every_gpu(runtime, container_runtime, uid):
    runtime.start(shell(1, "env; sleep 30"), (), uid=uid, cluster=None)
    [container] = container_runtime.containers(f"hypervisor.agent={uid}")
    assert container.attrs["HostConfig"]["NanoCpus"] == 0
    assert container.attrs["HostConfig"]["Memory"] == 0
    assert {"NVIDIA_VISIBLE_DEVICES=void", "CUDA_VISIBLE_DEVICES="} <= set(container.attrs["Config"]["Env"])
    runtime.remove(container.id)


def test_list_finds_only_its_own_containers_with_their_exit_codes(runtime, uid):
    other = uuid.uuid4().hex
    runtime.start(shell(1, "exit 3"), (), uid=uid, cluster=1)
    runtime.start(shell(2, "exit 0"), (), uid=other, cluster=1)
    observed = wait_until(lambda: [c for c in runtime.list(uid) if c.state == "exited"])
    assert [(c.deployment, c.attempt, c.exit_code) for c in observed] == [(1, 1, 3)]
    assert [c.deployment for c in runtime.list(other)] == [2]
    for container in runtime.list(uid) + runtime.list(other):
        runtime.remove(container.container_id)


def test_starting_twice_is_harmless(runtime, uid):
    runtime.start(shell(1, "sleep 30"), (), uid=uid, cluster=1)
    runtime.start(shell(1, "sleep 30"), (), uid=uid, cluster=1)
    [container] = runtime.list(uid)
    runtime.remove(container.container_id)


def test_stop_sends_sigterm_that_the_container_sees(runtime, uid):
    runtime.start(shell(1, "trap 'echo got TERM; exit 7' TERM; while true; do sleep 0.1; done"), (), uid=uid,
                  cluster=1)
    container = only(runtime, uid)
    time.sleep(0.3)  # lets the shell install its trap
    runtime.stop(container.container_id, 30)
    [stopped] = runtime.list(uid)
    assert (stopped.state, stopped.exit_code) == ("exited", 7)
    assert b"got TERM" in runtime.logs(container.container_id)
    runtime.remove(container.container_id)


def test_stop_kills_a_container_ignoring_sigterm_after_the_grace(runtime, uid):
    runtime.start(shell(1, "trap '' TERM; while true; do sleep 0.1; done"), (), uid=uid, cluster=1)
    container = only(runtime, uid)
    time.sleep(0.3)
    runtime.stop(container.container_id, 1)
    [stopped] = runtime.list(uid)
    assert (stopped.state, stopped.exit_code) == ("exited", 137)
    runtime.remove(container.container_id)


def test_missing_image_is_a_start_failure_with_the_runtimes_message(runtime, uid):
    with pytest.raises(StartFailed) as failure:
        runtime.start(Desired(1, 1, image="localhost/no-such-image:1"), (), uid=uid, cluster=1)
    assert "no-such-image" in failure.value.message
    assert runtime.list(uid) == []


def test_bad_command_is_a_start_failure_and_leaves_no_container(runtime, uid):
    with pytest.raises(StartFailed) as failure:
        runtime.start(Desired(1, 1, image="localhost/busybox:test", command=("/no/such/command",)), (),
                      uid=uid, cluster=1)
    assert "/no/such/command" in failure.value.message
    assert runtime.list(uid) == []


BINARY = b"text line\n\x00nul\xff\xfe not utf-8 \xc3(\n" + bytes(range(256)) + b"no newline at the end"


@pytest.mark.parametrize("lossless_follow", [False, True], ids=["polling", "following"])
def test_log_follower_keeps_every_byte_untouched(runtime, uid, lossless_follow):
    runtime.lossless_follow = lossless_follow
    runtime.start(shell(1, f"printf '{printf_escaped(BINARY)}'; sleep 0.5; printf '{printf_escaped(BINARY)}' >&2"),
                  (), uid=uid, cluster=1)
    follower = LogFollower(runtime, only(runtime, uid)).start()
    # The loop tells a follower once the runtime lists its container as finished.
    wait_until(lambda: only(runtime, uid).finished)
    follower.finished()
    wait_until(lambda: follower.take(10**9)[2])
    assert follower.take(10**9) == (0, BINARY * 2, True)
    follower.acknowledge(len(BINARY) + 5)
    assert follower.take(10**9) == (len(BINARY) + 5, BINARY[5:], True)
    runtime.remove(follower.container_id)


def printf_escaped(data: bytes) -> str:
    return "".join(f"\\{byte:03o}" for byte in data)


class FakeServer:
    """Stands in for the server's sync endpoint: keeps the reports and the logs the way the server would."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self.deployments: list[dict] = []
        self.reports: list[dict] = []
        self.logs: dict[tuple[int, int], bytearray] = {}
        self.refusal: Refused | None = None

    def clone(self) -> "FakeServer":
        return self

    def sync(self, report: dict) -> dict:
        if self.refusal is not None:
            raise self.refusal
        if "containers" in report:  # a heartbeat carries no picture
            self.reports.append(report)
        held = []
        for chunk in report["logs"]:
            key = (chunk["deployment"], chunk["attempt"])
            log = self.logs.setdefault(key, bytearray())
            data = base64.b64decode(chunk["data"])
            log += data[len(log) - chunk["offset"]:] if chunk["offset"] <= len(log) else b""
            held.append({"deployment": key[0], "attempt": key[1], "offset": len(log)})
        return {"agent": {"id": 1, "uid": self.uid, "name": "test", "cluster": 7}, "poll_seconds": 0.25,
                "deployments": list(self.deployments), "logs": held}

    def state(self, deployment: int, attempt: int = 1) -> tuple[str, int | None] | None:
        for report in reversed(self.reports[-1:]):
            for container in report.get("containers", []):
                if (container["deployment"], container["attempt"]) == (deployment, attempt):
                    return container["state"], container["exit_code"]
        return None


def deployment(deployment_id: int, script: str, attempt: int = 1, **fields) -> dict:
    return {"id": deployment_id, "attempt": attempt, "name": f"d{deployment_id}", "image": "localhost/busybox:test",
            "command": ["sh", "-c", script], "env": {}, "cpu": "0.000", "ram": "0.000", "gpu": 0,
            "stop_grace_seconds": 1, **fields}


@pytest.fixture
def agent_of(runtime):
    started = []

    def start(server: FakeServer, gpus=(0, 1)) -> tuple[Agent, threading.Thread, list[int]]:
        stop = threading.Event()
        agent = Agent(server, lambda: runtime, gpus, 0.05, stop)
        started.append((agent, stop))
        result: list[int] = []
        thread = threading.Thread(target=lambda: result.append(agent.run()), daemon=True)
        thread.start()
        return agent, thread, result

    yield start
    for agent, stop in started:
        stop.set()
        # Its log readers are threads of this process: end them before the runtime they read goes away.
        for follower in agent.followers.values():
            follower.close()


def test_agent_runs_a_deployment_reports_its_exit_after_all_its_logs_and_removes_it(runtime, uid, agent_of):
    server = FakeServer(uid)
    server.deployments = [deployment(1, "seq 1 20000; echo last; exit 4")]
    agent_of(server)
    assert wait_until(lambda: server.state(1) == ("exited", 4))
    lines = server.logs[(1, 1)].decode().splitlines()
    assert lines == [str(n) for n in range(1, 20001)] + ["last"]
    server.deployments = []
    wait_until(lambda: runtime.list(uid) == [])


def test_preemptor_starts_only_once_its_victim_has_stopped(runtime, uid, agent_of):
    server = FakeServer(uid)
    server.deployments = [deployment(1, "trap 'sleep 0.5; exit 0' TERM; while true; do sleep 0.1; done", gpu=2)]
    agent_of(server)
    victim = wait_until(lambda: [c for c in runtime.list(uid) if c.state == "running"])[0]
    assert victim.gpus == (0, 1)
    time.sleep(0.3)
    server.deployments = [deployment(2, "sleep 30", gpu=1)]
    live_sets = []  # the deployments with live containers, sampled until the preemptor runs
    while 2 not in (live_sets or [set()])[-1]:
        live_sets.append({c.deployment for c in runtime.list(uid) if c.live})
        assert len(live_sets) < 10_000
    assert {1, 2} not in live_sets
    [preemptor] = [c for c in runtime.list(uid) if c.deployment == 2]
    assert preemptor.gpus == (0,)
    server.deployments = []
    wait_until(lambda: runtime.list(uid) == [])


def test_failed_start_is_reported_until_no_longer_desired(uid, agent_of):
    server = FakeServer(uid)
    server.deployments = [{**deployment(1, ""), "command": ["/no/such/command"]}]
    agent_of(server)
    failure = wait_until(lambda: server.reports and server.reports[-1]["start_failures"])
    assert failure[0]["deployment"] == 1 and "/no/such/command" in failure[0]["error"]
    server.deployments = []
    wait_until(lambda: not server.reports[-1]["start_failures"])


def test_restarted_agent_adopts_running_containers(runtime, uid, agent_of):
    server = FakeServer(uid)
    server.deployments = [deployment(1, "echo hello; sleep 30")]
    first, _, _ = agent_of(server)
    container = wait_until(lambda: [c for c in runtime.list(uid) if c.live])[0]
    first.stop.set()
    second_server = FakeServer(uid)
    second_server.deployments = server.deployments
    agent_of(second_server)
    wait_until(lambda: second_server.logs.get((1, 1)) == b"hello\n")
    assert [c.container_id for c in runtime.list(uid)] == [container.container_id]
    second_server.deployments = []
    wait_until(lambda: runtime.list(uid) == [])


def test_revoked_agent_stops_and_removes_its_containers_and_exits_3(runtime, uid, agent_of):
    server = FakeServer(uid)
    server.deployments = [deployment(1, "sleep 30", stop_grace_seconds=2), deployment(2, "sleep 30")]
    _, thread, result = agent_of(server)
    wait_until(lambda: len([c for c in runtime.list(uid) if c.live]) == 2)
    server.refusal = Refused("agent_revoked", "revoked", uid)
    thread.join(timeout=10)
    assert result == [3]
    assert runtime.list(uid) == []


def test_unknown_token_at_the_first_call_exits_2(uid, agent_of):
    server = FakeServer(uid)
    server.refusal = Refused("agent_token_invalid", "unknown token", None)
    _, thread, result = agent_of(server)
    thread.join(timeout=5)
    assert result == [2]


class Endpoint(BaseHTTPRequestHandler):
    status = 200
    body = b'{"agent": {"id": 1, "uid": "0123456789abcdef0123456789abcdef", "cluster": 1}, "deployments": []}'

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


def serve(status: int, body: bytes | None = None) -> ThreadingHTTPServer:
    handler = type("Handler", (Endpoint,), {"status": status, "body": body or Endpoint.body})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def agent_process(httpd: ThreadingHTTPServer, docker_host: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cluster_agent", "--server", f"http://127.0.0.1:{httpd.server_port}",
         "--token", "t0ken"],
        cwd=ROOT, env={**os.environ, "DOCKER_HOST": docker_host}, stderr=subprocess.PIPE, text=True,
    )


def test_cli_refused_token_is_a_clear_error_and_exit_2(container_runtime):
    httpd = serve(401, b'{"detail": "Invalid agent token.", "code": "agent_token_invalid"}')
    process = agent_process(httpd, container_runtime.docker_host)
    _, stderr = process.communicate(timeout=20)
    httpd.shutdown()
    assert process.returncode == 2
    assert "bin/agent: the server refused the agent token (Invalid agent token.)" in stderr


def test_cli_exits_0_within_5_seconds_of_sigterm(container_runtime):
    httpd = serve(200)
    process = agent_process(httpd, container_runtime.docker_host)
    time.sleep(2)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    httpd.shutdown()
    assert process.returncode == 0, stderr
    assert time.monotonic() - sent < 5
