"""Agents through the API: registration, liveness, the sync that drives execution, logs, and isolation.

The agent here is the test itself speaking the agent's protocol; tests/agent/ runs the real program against
real containers.
"""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.exceptions import NotFound

from agents.liveness import requeue_lost_agents
from agents.models import Agent, hash_token
from agents.registration import register_agent
from deployments.models import Deployment, RunAttempt
from organizations.models import Role
from tests.agents.sync import agent_client, chunk, container, desired, events, kinds, register, sync
from tests.conftest import client_for
from tests.deployments.api import DEPLOYMENTS, action, get, submit
from tests.factories import ClusterFactory, MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db(transaction=True)


# --- Registration, listing, revocation -----------------------------------------------------------------

def test_registration_shows_a_random_token_once_and_stores_only_its_hash(admin, cluster):
    body = register(admin, cluster, name="gpu-host")
    assert set(body) == {"id", "name", "token", "created_at"} and body["name"] == "gpu-host"
    assert body["token"].startswith("hva_") and len(body["token"]) >= 4 + 43  # 256 bits, base64url
    stored = Agent.objects.get(pk=body["id"])
    assert stored.token_hash == hash_token(body["token"]) and body["token"] not in stored.token_hash
    listed = admin.get(f"/api/v1/clusters/{cluster.pk}/agents/").json()["results"]
    assert listed == [{"id": body["id"], "name": "gpu-host", "status": "new", "last_seen_at": None, "version": "",
                       "hostname": "", "created_at": body["created_at"]}]


def test_tokens_differ_between_agents(admin, organization):
    tokens = {register(admin, ClusterFactory(organization=organization))["token"] for _ in range(3)}
    assert len(tokens) == 3


def test_a_second_agent_is_409_until_the_first_is_revoked(admin, cluster):
    first = register(admin, cluster)
    assert admin.post(f"/api/v1/clusters/{cluster.pk}/agents/", {"name": "other"}).status_code == 409
    assert admin.delete(f"/api/v1/clusters/{cluster.pk}/agents/{first['id']}/").status_code == 204
    assert admin.get(f"/api/v1/clusters/{cluster.pk}/agents/").json()["count"] == 0
    register(admin, cluster, name="other")


@pytest.mark.parametrize("role, list_status, register_status, revoke_status", [
    (Role.VIEWER, 200, 403, 403), (Role.DEVELOPER, 200, 403, 403), (Role.ADMIN, 200, 201, 204),
])
def test_members_read_agents_and_only_admins_register_and_revoke(member, cluster, role, list_status,
                                                                   register_status, revoke_status):
    existing = register(member(Role.ADMIN), ClusterFactory(organization=cluster.organization))
    client = member(role)
    assert client.get(f"/api/v1/clusters/{cluster.pk}/agents").status_code == list_status
    assert client.post(f"/api/v1/clusters/{cluster.pk}/agents", {"name": "x"}).status_code == register_status
    other_cluster = Agent.objects.get(pk=existing["id"]).cluster_id
    assert client.delete(f"/api/v1/clusters/{other_cluster}/agents/{existing['id']}").status_code == revoke_status


def test_outsiders_get_404_for_every_agent_route(agent, cluster, auth_client):
    agent_id = agent.registered["id"]
    assert auth_client.get(f"/api/v1/clusters/{cluster.pk}/agents/").status_code == 404
    assert auth_client.post(f"/api/v1/clusters/{cluster.pk}/agents/", {"name": "x"}).status_code == 404
    assert auth_client.delete(f"/api/v1/clusters/{cluster.pk}/agents/{agent_id}/").status_code == 404


def test_an_agent_of_another_cluster_cannot_be_revoked_through_this_one(admin, agent, organization):
    other = ClusterFactory(organization=organization)
    assert admin.delete(f"/api/v1/clusters/{other.pk}/agents/{agent.registered['id']}/").status_code == 404


def test_registration_needs_a_name(admin, cluster):
    response = admin.post(f"/api/v1/clusters/{cluster.pk}/agents/", {})
    assert response.status_code == 400 and "name" in response.json()


# --- Tokens and liveness --------------------------------------------------------------------------------

def test_an_agent_token_is_401_on_every_user_endpoint(agent, cluster):
    for path in ("/api/v1/clusters/", f"/api/v1/clusters/{cluster.pk}/", DEPLOYMENTS, "/api/v1/auth/me",
                 "/api/v1/organizations/", f"/api/v1/clusters/{cluster.pk}/agents/"):
        assert agent.get(path).status_code == 401, path
    assert agent.post(DEPLOYMENTS, {"name": "x", "cluster": cluster.pk, "docker_image": "i"}).status_code == 401


def test_sync_refuses_a_missing_or_unknown_token(api_client):
    assert api_client.post("/api/v1/agent/sync/", {}).status_code == 401
    response = agent_client("hva_not-a-token").post("/api/v1/agent/sync/", {})
    assert response.status_code == 401 and response.json()["code"] == "agent_token_invalid"


def test_a_revoked_token_stops_working_at_once_and_says_so(admin, agent, cluster):
    sync(agent)
    admin.delete(f"/api/v1/clusters/{cluster.pk}/agents/{agent.registered['id']}/")
    body = sync(agent, status_code=401)
    assert body["code"] == "agent_revoked" and body["agent"] == Agent.objects.get().uid


def test_a_user_jwt_is_401_on_the_sync(admin):
    assert admin.post("/api/v1/agent/sync/", {}).status_code == 401


def test_status_goes_online_on_a_call_and_offline_after_the_silence(admin, agent, cluster, settings):
    answer = sync(agent)
    assert answer["agent"]["cluster"] == cluster.pk and answer["poll_seconds"] > 0
    listed = admin.get(f"/api/v1/clusters/{cluster.pk}/agents/").json()["results"][0]
    assert listed["status"] == "online" and listed["hostname"] == "host-1" and listed["version"] == "1.0.0"
    Agent.objects.update(last_seen_at=timezone.now() - timedelta(seconds=settings.AGENT_OFFLINE_AFTER_SECONDS + 1))
    assert admin.get(f"/api/v1/clusters/{cluster.pk}/agents/").json()["results"][0]["status"] == "offline"


def test_a_sync_with_a_malformed_report_is_a_400_naming_the_field(agent):
    response = agent.post("/api/v1/agent/sync/", {"containers": [{"deployment": "x", "attempt": 1}]})
    assert response.status_code == 400 and "containers" in response.json()
    response = agent.post("/api/v1/agent/sync/", {"logs": [{"deployment": 1, "attempt": 1, "offset": 0,
                                                            "data": "***"}]})
    assert response.status_code == 400 and "logs" in response.json()


# --- Execution: what the agent is told and what its reports do --------------------------------------------

def test_a_started_deployment_is_handed_to_the_agent_and_its_report_starts_it(dev, agent, cluster):
    pk = submit(dev, cluster, cpu="0.5", ram="0.25", gpu=1, command=["sh", "-c", "echo hi"], env={"A": "1"},
                stop_grace_seconds=7)
    body = get(dev, pk)
    assert body["status"] == "running" and body["runtime"]["state"] == "starting"
    assert body["runtime"]["attempt"] == 1 and body["runtime"]["agent"] == agent.registered["id"]
    [spec] = sync(agent)["deployments"]
    assert spec == {"id": pk, "attempt": 1, "name": "job", "image": "registry/img:1",
                    "command": ["sh", "-c", "echo hi"], "env": {"A": "1"}, "cpu": "0.500", "ram": "0.250",
                    "gpu": 1, "stop_grace_seconds": 7, "persist_path": None, "ports": [], "host_ports": [],
                    "health_check": None}
    sync(agent, [container(pk, 1, "created")])
    assert get(dev, pk)["runtime"]["state"] == "starting"
    sync(agent, [container(pk, 1, "running")])
    runtime = get(dev, pk)["runtime"]
    assert runtime["state"] == "running" and runtime["container"] == container(pk, 1)["container"]
    assert events(dev, pk)[-1] == ("started", f"Container {runtime['container'][:12]} started on agent 'host-1'.")


def test_exit_zero_completes_and_frees_the_resources(dev, agent, cluster):
    pk = submit(dev, cluster, cpu="4")
    waiting = submit(dev, cluster, cpu="4")
    sync(agent, [container(pk, 1)])
    answer = sync(agent, [container(pk, 1, "exited", 0)])
    body = get(dev, pk)
    assert body["status"] == "completed" and body["exit_code"] == 0 and body["runtime"]["state"] == "exited"
    assert body["status_reason"] == "Completed: its container exited with code 0."
    assert desired(answer) == {waiting: 1} and get(dev, waiting)["status"] == "running"


def test_a_nonzero_exit_fails_with_the_code_in_the_reason_and_the_event(dev, agent, cluster):
    pk = submit(dev, cluster)
    sync(agent, [container(pk, 1, "exited", 3)])
    body = get(dev, pk)
    assert body["status"] == "failed" and body["exit_code"] == 3
    assert "code 3" in body["status_reason"]
    assert kinds(dev, pk) == ["queued", "scheduled", "started", "failed"]
    assert "code 3" in events(dev, pk)[-1][1]


def test_a_start_failure_fails_the_deployment_with_the_runtimes_message(dev, agent, cluster):
    pk = submit(dev, cluster)
    error = 'no such image: localhost/nope:1: image not known'
    sync(agent, start_failures=[{"deployment": pk, "attempt": 1, "error": error}])
    body = get(dev, pk)
    assert body["status"] == "failed" and body["status_reason"] == f"Failed to start: {error}"
    assert body["exit_code"] is None


def test_a_report_that_arrives_twice_or_late_changes_nothing_more(dev, agent, cluster):
    pk = submit(dev, cluster)
    report = [container(pk, 1, "exited", 0)]
    sync(agent, report)
    before = events(dev, pk)
    sync(agent, report)
    sync(agent, [container(pk, 1, "running")])
    sync(agent, start_failures=[{"deployment": pk, "attempt": 1, "error": "late"}])
    assert events(dev, pk) == before and get(dev, pk)["status"] == "completed"


def test_a_running_container_that_vanishes_fails_the_deployment(dev, agent, cluster):
    pk = submit(dev, cluster)
    sync(agent, [container(pk, 1)])
    sync(agent, [])
    body = get(dev, pk)
    assert body["status"] == "failed" and "vanished" in body["status_reason"]


def test_a_sync_without_a_picture_changes_nothing(dev, agent, cluster):
    pk = submit(dev, cluster)
    sync(agent, [container(pk, 1)])
    assert desired(sync(agent, None)) == {pk: 1}
    assert get(dev, pk)["runtime"]["state"] == "running"


def test_a_starting_attempt_missing_from_a_report_just_waits(dev, agent, cluster):
    pk = submit(dev, cluster)
    sync(agent, [])
    assert get(dev, pk)["status"] == "running" and get(dev, pk)["runtime"]["state"] == "starting"


@pytest.mark.parametrize("finish", ["complete", "fail", "cancel"])
def test_a_user_finishing_a_deployment_has_its_container_stopped(dev, agent, cluster, finish):
    pk = submit(dev, cluster)
    sync(agent, [container(pk, 1)])
    assert action(dev, pk, finish).status_code == 200
    assert get(dev, pk)["runtime"]["state"] == "stopping"
    assert desired(sync(agent, [container(pk, 1)])) == {}
    sync(agent, [container(pk, 1, "exited", 143)])
    assert get(dev, pk)["runtime"]["state"] == "stopped"
    assert events(dev, pk)[-1] == ("stopped", f"Container {container(pk, 1)['container'][:12]} stopped (exit code 143).")
    assert get(dev, pk)["status"] == {"complete": "completed", "fail": "failed", "cancel": "cancelled"}[finish]


def test_a_preempted_deployments_container_stops_and_a_later_start_is_a_new_attempt(dev, agent, cluster):
    victim = submit(dev, cluster, cpu="4", priority=0)
    sync(agent, [container(victim, 1)])
    urgent = submit(dev, cluster, cpu="4", priority=10)
    assert get(dev, victim)["status"] == "pending" and get(dev, victim)["runtime"]["state"] == "stopping"
    assert desired(sync(agent, [container(victim, 1)])) == {urgent: 1}
    sync(agent, [container(urgent, 1)])  # the victim's container is gone
    assert kinds(dev, victim)[-1] == "stopped"
    sync(agent, [container(urgent, 1, "exited", 0)])
    assert desired(sync(agent, [])) == {victim: 2}
    assert get(dev, victim)["runtime"] == {**get(dev, victim)["runtime"], "attempt": 2, "state": "starting"}
    assert RunAttempt.objects.filter(deployment_id=victim).count() == 2


def test_registering_an_agent_hands_it_what_already_runs(admin, dev, cluster):
    pk = submit(dev, cluster)
    assert get(dev, pk)["runtime"] is None
    client = agent_client(register(admin, cluster)["token"])
    assert desired(sync(client)) == {pk: 1}


def test_a_ledger_only_cluster_shows_no_runtime_and_empty_logs(dev, cluster):
    pk = submit(dev, cluster)
    body = get(dev, pk)
    assert body["runtime"] is None and body["exit_code"] is None and body["command"] is None
    assert body["env"] == {} and body["stop_grace_seconds"] == 30
    assert dev.get(f"{DEPLOYMENTS}{pk}/logs/").json() == {"lines": [], "truncated": False}


def test_the_sync_never_shows_another_clusters_work(dev, agent, organization, cluster):
    other = ClusterFactory(organization=organization)
    mine = submit(dev, cluster)
    theirs = submit(dev, other)
    assert desired(sync(agent)) == {mine: 1}
    # Reports and output about another cluster's deployment are ignored.
    sync(agent, [container(theirs, 1, "exited", 0)], logs=[chunk(theirs, 1, 0, b"sneaky\n")])
    assert get(dev, theirs)["status"] == "running"
    assert dev.get(f"{DEPLOYMENTS}{theirs}/logs/").json()["lines"] == []


# --- Lost agents -------------------------------------------------------------------------------------------

def silence(seconds: float) -> None:
    Agent.objects.update(last_seen_at=timezone.now() - timedelta(seconds=seconds))


def test_a_lost_agents_running_deployments_are_requeued_in_place_and_wait_for_it(dev, agent, cluster, settings):
    first = submit(dev, cluster, cpu="2")
    second = submit(dev, cluster, cpu="2")
    sync(agent, [container(first, 1), container(second, 1)])
    silence(settings.AGENT_LOST_AFTER_SECONDS - 5)
    assert requeue_lost_agents() == 0
    silence(settings.AGENT_LOST_AFTER_SECONDS + 1)
    assert requeue_lost_agents() == 2
    for pk in (first, second):
        body = get(dev, pk)
        assert body["status"] == "pending" and body["runtime"]["state"] == "stopping"
        assert body["preemption_count"] == 0
        kind, message = events(dev, pk)[-1]
        assert kind == "requeued" and "agent 'host-1' was lost" in message
    cluster.refresh_from_db()
    assert cluster.available == cluster.capacity
    # Nothing starts on a cluster whose host is gone, even when asked.
    submit(dev, cluster, cpu="1")
    assert Deployment.objects.filter(cluster=cluster, status="running").count() == 0
    # Back: it stops the old containers first (they are not desired), then the work starts again, in order.
    answer = sync(agent, [container(first, 1), container(second, 1)])
    assert desired(answer) == {first: 2, second: 2}
    assert [kinds(dev, pk)[-1] for pk in (first, second)] == ["scheduled", "scheduled"]


def test_an_agent_that_comes_back_in_time_keeps_its_containers(dev, agent, cluster, settings):
    pk = submit(dev, cluster)
    sync(agent, [container(pk, 1)])
    silence(settings.AGENT_OFFLINE_AFTER_SECONDS + 1)
    assert requeue_lost_agents() == 0
    assert desired(sync(agent, [container(pk, 1)])) == {pk: 1}
    assert get(dev, pk)["runtime"]["state"] == "running"


def test_a_never_connected_agent_counts_as_lost_from_its_registration(dev, agent, cluster, settings):
    pk = submit(dev, cluster)
    Agent.objects.update(created_at=timezone.now() - timedelta(seconds=settings.AGENT_LOST_AFTER_SECONDS + 1))
    assert requeue_lost_agents() == 1
    assert get(dev, pk)["status"] == "pending"


# --- Logs --------------------------------------------------------------------------------------------------

def test_output_is_appended_once_whatever_is_sent_again(dev, agent, cluster):
    pk = submit(dev, cluster)
    answer = sync(agent, [container(pk, 1)], logs=[chunk(pk, 1, 0, b"one\ntwo\n")])
    assert answer["logs"] == [{"deployment": pk, "attempt": 1, "offset": 8}]
    sync(agent, [container(pk, 1)], logs=[chunk(pk, 1, 0, b"one\ntwo\n")])  # a duplicate
    sync(agent, [container(pk, 1)], logs=[chunk(pk, 1, 0, b"one\ntwo\nthree")])  # a restarted agent, from 0
    assert dev.get(f"{DEPLOYMENTS}{pk}/logs/").json() == {"lines": ["one", "two", "three"], "truncated": False}
    assert dev.get(f"{DEPLOYMENTS}{pk}/logs/?tail=2").json() == {"lines": ["two", "three"], "truncated": True}


def test_bytes_that_are_not_utf8_are_replaced_and_nul_dropped(dev, agent, cluster):
    pk = submit(dev, cluster)
    sync(agent, [container(pk, 1)], logs=[chunk(pk, 1, 0, b"ok \xff\xfe bad\x00nul\n\x00\x00\n")])
    assert dev.get(f"{DEPLOYMENTS}{pk}/logs/").json()["lines"] == ["ok \ufffd\ufffd badnul", ""]


def test_huge_output_keeps_at_least_the_last_mebibyte(dev, agent, cluster):
    pk = submit(dev, cluster)
    line = b"x" * 1023 + b"\n"
    offset = 0
    for batch in range(3):  # 3 MiB in 1 MiB syncs
        data = b"".join(f"{batch:01d}".encode() + line[1:] for _ in range(1024))
        sync(agent, [container(pk, 1)], logs=[chunk(pk, 1, offset, data)])
        offset += len(data)
    sync(agent, [container(pk, 1)], logs=[chunk(pk, 1, offset, b"last\n")])
    body = dev.get(f"{DEPLOYMENTS}{pk}/logs/?tail=10000").json()
    assert body["truncated"] is True and body["lines"][-1] == "last"
    assert sum(len(x) + 1 for x in body["lines"]) >= 2**20
    assert RunAttempt.objects.get(deployment_id=pk).log_bytes == offset + 5


def test_logs_tail_is_validated(dev, agent, cluster):
    pk = submit(dev, cluster)
    for bad in ("-1", "10001", "abc", "1.5"):
        response = dev.get(f"{DEPLOYMENTS}{pk}/logs/?tail={bad}")
        assert response.status_code == 400 and "tail" in response.json(), bad


def test_logs_are_read_by_viewers_and_hidden_from_outsiders(member, dev, agent, cluster, auth_client):
    pk = submit(dev, cluster)
    sync(agent, [container(pk, 1)], logs=[chunk(pk, 1, 0, b"secret\n")])
    assert member(Role.VIEWER).get(f"{DEPLOYMENTS}{pk}/logs/").json()["lines"] == ["secret"]
    assert auth_client.get(f"{DEPLOYMENTS}{pk}/logs/").status_code == 404
    assert auth_client.get(f"{DEPLOYMENTS}{pk}/").status_code == 404


# --- The new deployment fields --------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("command", "echo hi"), ("command", [1, 2]), ("command", ["ok", "nul\x00"]), ("command", [["nested"]]),
    ("env", ["A=1"]), ("env", {"1BAD": "x"}), ("env", {"A-B": "x"}), ("env", {"A": 1}), ("env", {"A": None}),
    ("env", {"A": "nul\x00"}), ("stop_grace_seconds", -1), ("stop_grace_seconds", 3601),
    ("stop_grace_seconds", "soon"), ("stop_grace_seconds", 1.5),
])
def test_bad_container_settings_are_400s_naming_the_field(dev, cluster, field, value):
    response = dev.post(DEPLOYMENTS, {"name": "x", "cluster": cluster.pk, "docker_image": "i", field: value})
    assert response.status_code == 400 and field in response.json(), response.content
    assert Deployment.objects.count() == 0


def test_container_settings_round_trip_and_stay_editable(dev, cluster):
    pk = submit(dev, cluster, command=["sh", "-c", "exit 0"], env={"MODEL": "bert", "_X1": ""},
                stop_grace_seconds=0)
    body = get(dev, pk)
    assert (body["command"], body["env"], body["stop_grace_seconds"]) == (["sh", "-c", "exit 0"],
                                                                         {"MODEL": "bert", "_X1": ""}, 0)
    response = dev.patch(f"{DEPLOYMENTS}{pk}/", {"command": None, "env": {}, "stop_grace_seconds": 3600})
    assert response.status_code == 200
    assert (response.json()["command"], response.json()["env"], response.json()["stop_grace_seconds"]) == (
        None, {}, 3600)


def test_env_is_hidden_from_other_tenants(dev, cluster):
    pk = submit(dev, cluster, env={"TOKEN": "s3cret"})
    outsider = MembershipFactory(organization=OrganizationFactory()).user
    assert client_for(outsider).get(f"{DEPLOYMENTS}{pk}/").status_code == 404
    assert "s3cret" not in str(client_for(outsider).get(DEPLOYMENTS).content)


def test_registering_on_a_cluster_deleted_meanwhile_is_a_404_not_a_500(db):
    cluster = ClusterFactory()
    cluster_id = cluster.pk
    cluster.delete()  # after the view found it, before the service locks it
    with pytest.raises(NotFound):
        register_agent(cluster_id=cluster_id, name="host")
