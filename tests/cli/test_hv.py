"""hv as a user runs it: real processes against a real server and a real agent running containers on Podman."""
import json
import stat
import time

import pytest

from tests.agent.processes import AgentProcess
from tests.workers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

IMAGE = "localhost/busybox:test"


def ok(result) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line]


@pytest.fixture
def driven(hv, account, server, container_runtime, agent_installed, tmp_path):
    """Logged in with hv, an organization, a cluster and its agent (a real bin/agent): the cluster's id."""
    ok(hv("login", "--server", server.base, "--username", "ada", "--password-stdin", input="correct-horse-battery\n"))
    org = json.loads(ok(hv("org", "create", "ml", "-o", "json")))["id"]
    cluster = json.loads(ok(hv("cluster", "create", "pool", "--org", str(org), "--cpu", "2", "--ram", "2",
                               "-o", "json")))["id"]
    token = json.loads(ok(hv("agent", "register", str(cluster), "host-1", "-o", "json")))["token"]
    agent = AgentProcess(server.base, token, container_runtime.docker_host, tmp_path).start()
    yield cluster
    agent.stop()
    for container in container_runtime.client.containers.list(all=True, filters={"label": "hypervisor.deployment"}):
        container.remove(force=True)


def status_of(hv, pk: int) -> str:
    return json.loads(ok(hv("get", str(pk), "-o", "json")))["status"]


def test_login_keeps_the_tokens_private_and_a_wrong_password_is_one_line_and_exit_1(hv, account, server):
    wrong = hv("login", "--server", server.base, "--username", "ada", "--password-stdin", input="nope\n")
    assert wrong.returncode == 1
    assert wrong.stderr == "hv: No active account found with the given credentials\n"
    ok(hv("login", "--server", server.base, "--username", "ada", "--password-stdin", input="correct-horse-battery\n"))
    assert stat.S_IMODE(hv.config.stat().st_mode) == 0o600
    assert json.loads(ok(hv("whoami", "-o", "json")))["username"] == "ada"
    unknown = hv("get", "999999")
    assert (unknown.returncode, unknown.stderr) == (1, "hv: No Deployment matches the given query.\n")
    assert hv("run", "--cluster", "1").returncode == 2  # a usage error: no image
    ok(hv("logout"))
    assert hv("whoami").stderr.startswith("hv: not logged in")


def test_two_hv_processes_refreshing_at_once_do_not_log_each_other_out(hv, account, server):
    ok(hv("login", "--server", server.base, "--username", "ada", "--password-stdin", input="correct-horse-battery\n"))
    settings = json.loads(hv.config.read_text())
    hv.config.write_text(json.dumps({**settings, "access": "expired.or.revoked"}))  # every process must refresh
    processes = [hv.start("whoami", "-o", "json") for _ in range(4)]
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert json.loads(out)["username"] == "ada"
    ok(hv("whoami"))  # and the refresh token kept in the file still works


def test_run_attach_follows_the_output_and_exits_with_the_containers_code(hv, driven):
    result = hv("run", "--cluster", str(driven), "--cpu", "0.5", "--ram", "0.25", "--attach", IMAGE, "--",
                "sh", "-c", "echo hello; echo from the container; exit 3")
    assert result.returncode == 3, result.stderr
    assert result.stdout == "hello\nfrom the container\n"
    assert "failed" in result.stderr.splitlines()[-1]


def test_apply_submits_a_pipeline_with_dependencies_by_name(hv, driven, tmp_path):
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(f"""
- name: evaluate
  cluster: {driven}
  docker_image: {IMAGE}
  command: ["sh", "-c", "echo evaluated"]
  cpu_required: "0.5"
  depends_on: [train]
- name: train
  cluster: {driven}
  docker_image: {IMAGE}
  command: ["sh", "-c", "echo trained"]
  cpu_required: "0.5"
""")
    created = json_lines(ok(hv("apply", "-f", str(pipeline), "-o", "json")))
    assert [d["name"] for d in created] == ["train", "evaluate"]  # dependencies first
    train, evaluate = created
    assert evaluate["depends_on"] == [train["id"]]
    wait_until(lambda: status_of(hv, evaluate["id"]) == "completed", timeout=60, what="the pipeline to complete")
    assert ok(hv("logs", str(evaluate["id"]))) == "evaluated\n"
    listed = {d["id"]: d["status"] for d in json_lines(ok(hv("ps", "-a", "-o", "json")))}
    assert listed[train["id"]] == listed[evaluate["id"]] == "completed"
    assert "evaluate" in ok(hv("ps", "-a"))  # the table


def test_why_explains_a_pending_deployment(hv, driven):
    long = json.loads(ok(hv("run", "--cluster", str(driven), "--cpu", "1.5", "-o", "json", IMAGE, "--",
                            "sh", "-c", "sleep 60")))
    waiting = json.loads(ok(hv("run", "--cluster", str(driven), "--cpu", "1", "-o", "json", IMAGE)))
    assert waiting["status"] == "pending"
    words = ok(hv("why", str(waiting["id"])))
    assert f"#{waiting['id']} 'busybox' is pending: Needs 1 CPU, 0.5 free." in words
    assert "Queue position: 1" in words and "Short of: 0.5 CPU" in words
    assert json.loads(ok(hv("why", str(waiting["id"]), "-o", "json")))["scheduling"]["reason"] == "resources"
    quotas = json_lines(ok(hv("quotas", str(driven), "-o", "json")))
    assert [q["project"] for q in quotas] == [waiting["project"]]  # the organization's default project
    assert "PROJECT" in ok(hv("quotas", str(driven)))
    for pk in (waiting["id"], long["id"]):
        ok(hv("cancel", str(pk)))


def test_logs_follow_waits_through_pending_and_survives_a_dropped_connection(hv, driven, server):
    blocker = json.loads(ok(hv("run", "--cluster", str(driven), "--cpu", "2", "-o", "json", IMAGE, "--",
                               "sh", "-c", "sleep 2")))
    script = "for i in $(seq 1 40); do echo line $i; sleep 0.1; done"
    pk = json.loads(ok(hv("run", "--cluster", str(driven), "--cpu", "1", "-o", "json", IMAGE, "--",
                          "sh", "-c", script)))["id"]
    follower = hv.start("logs", "-f", str(pk))
    first = follower.stdout.readline()
    assert first == "line 1\n"
    server.cut()  # every connection dropped, the follower's and the agent's
    time.sleep(0.5)
    server.start()
    out, err = follower.communicate(timeout=90)
    assert follower.returncode == 0, err
    assert first + out == "".join(f"line {i}\n" for i in range(1, 41))  # nothing lost, nothing twice
    assert f"#{pk} is pending: " in err  # it said why it waited
    assert status_of(hv, blocker["id"]) == "completed"


def test_ps_watch_prints_each_change_as_json(hv, driven):
    watcher = hv.start("ps", "-w", "-o", "json")
    pk = json.loads(ok(hv("run", "--cluster", str(driven), "--cpu", "0.5", "-o", "json", IMAGE, "--",
                          "sh", "-c", "echo done")))["id"]
    seen = []
    while "completed" not in seen:
        body = json.loads(watcher.stdout.readline())
        if body["id"] == pk:
            seen.append(body["status"])
    watcher.kill()
    watcher.communicate()
    assert seen[-1] == "completed"
