"""Restarts in place, why a deployment ended, the order of a report's events and the volumes, through the
agent-facing API (the test speaks as the agent; tests/agent/test_lifecycle.py runs real containers)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.liveness import requeue_lost_agents
from agents.models import Agent
from deployments.models import Deployment, RunAttempt
from tests.agents.sync import container, desired, events, sync
from tests.deployments.api import DEPLOYMENTS, action, available, get, submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _backoff(settings):
    settings.RESTART_BACKOFF_SECONDS = 10
    settings.RESTART_BACKOFF_MAX_SECONDS = 25
    settings.RESTART_RESET_SECONDS = 600


def backoff_over(pk) -> None:
    """The current restart's backoff has passed (as if the clock had moved on)."""
    RunAttempt.objects.filter(deployment_id=pk, not_before__isnull=False).update(
        not_before=timezone.now() - timedelta(seconds=1))


def test_a_failing_container_restarts_in_place_after_its_backoff_then_completes(dev, agent, cluster):
    pk = submit(dev, cluster, restart_policy="on_failure", max_restarts=3)
    sync(agent, [container(pk, 1)])
    answer = sync(agent, [container(pk, 1, "exited", 1)])
    body = get(dev, pk)
    assert (body["status"], body["restart_count"], body["end_reason"]) == ("running", 1, None)
    assert body["runtime"]["state"] == "backoff" and body["runtime"]["attempt"] == 1
    assert body["runtime"]["next_start_at"] is not None
    assert body["status_reason"] == "Restarting (1 of 3) in 10 s: its container exited with code 1."
    assert events(dev, pk)[-1] == ("restarted", "Restart 1 of 3 after 10 s: its container exited with code 1.")
    assert desired(answer) == {}  # nothing to run while it waits: the exited container goes
    assert available(dev, cluster)[0] == "3.000"  # it keeps its resources meanwhile

    backoff_over(pk)
    assert desired(sync(agent, [])) == {pk: 2}  # the next run of the same attempt
    sync(agent, [container(pk, 2)])
    body = get(dev, pk)
    assert body["runtime"]["state"] == "running" and body["runtime"]["attempt"] == 1
    assert body["status_reason"] == f"Running on cluster '{cluster.name}'."

    sync(agent, [container(pk, 2, "exited", 1)])
    assert events(dev, pk)[-1] == ("restarted", "Restart 2 of 3 after 20 s: its container exited with code 1.")
    backoff_over(pk)
    sync(agent, [container(pk, 3, "exited", 0)])
    body = get(dev, pk)
    assert (body["status"], body["end_reason"], body["exit_code"], body["restart_count"]) == (
        "completed", "exited", 0, 2)
    assert [kind for kind, _ in events(dev, pk)] == [
        "queued", "scheduled", "started", "restarted", "started", "restarted", "started", "completed"]


def test_restarts_used_up_fail_it_with_the_last_exit_code(dev, agent, cluster):
    pk = submit(dev, cluster, restart_policy="always", max_restarts=1)
    sync(agent, [container(pk, 1, "exited", 0)])  # always: even exit 0 restarts
    assert get(dev, pk)["restart_count"] == 1
    backoff_over(pk)
    sync(agent, [container(pk, 2, "exited", 4)])
    body = get(dev, pk)
    assert (body["status"], body["end_reason"], body["exit_code"]) == ("failed", "restarts_exhausted", 4)
    assert body["status_reason"] == ("Failed: its container exited with code 4; its restarts are used up "
                                     "(max_restarts 1).")


def test_a_container_that_ran_long_restarts_at_once_and_the_doubling_starts_afresh(dev, agent, cluster):
    pk = submit(dev, cluster, restart_policy="on_failure", max_restarts=None)
    sync(agent, [container(pk, 1)])
    sync(agent, [container(pk, 1, "exited", 1)])
    backoff_over(pk)
    sync(agent, [container(pk, 2)])
    RunAttempt.objects.filter(deployment_id=pk, number=2).update(
        running_since=timezone.now() - timedelta(seconds=600))
    answer = sync(agent, [container(pk, 2, "exited", 1)])
    assert events(dev, pk)[-1] == ("restarted", "Restart 2 after 0 s: its container exited with code 1.")
    assert desired(answer) == {pk: 3}
    sync(agent, [container(pk, 3)])
    sync(agent, [container(pk, 3, "exited", 1)])
    assert events(dev, pk)[-1] == ("restarted", "Restart 3 after 10 s: its container exited with code 1.")


def test_an_exit_reported_again_after_an_agent_restart_is_restarted_once(dev, agent, cluster):
    pk = submit(dev, cluster, restart_policy="on_failure")
    report = [container(pk, 1, "exited", 1)]
    sync(agent, report)
    sync(agent, report)  # a restarted agent reports the same exited container again
    sync(agent, [])
    assert get(dev, pk)["restart_count"] == 1
    assert [kind for kind, _ in events(dev, pk)].count("restarted") == 1


def test_never_ends_at_the_first_exit_and_a_start_failure_is_not_restarted(dev, agent, cluster):
    never = submit(dev, cluster, cpu="1")
    broken = submit(dev, cluster, cpu="1", restart_policy="always")
    sync(agent, [container(never, 1, "exited", 2)],
         start_failures=[{"deployment": broken, "attempt": 1, "error": "no such image"}])
    assert (get(dev, never)["status"], get(dev, never)["end_reason"]) == ("failed", "exited")
    assert (get(dev, broken)["status"], get(dev, broken)["end_reason"]) == ("failed", "start_error")
    assert get(dev, broken)["restart_count"] == 0


def test_a_vanished_container_ends_it_vanished(dev, agent, cluster):
    pk = submit(dev, cluster)
    sync(agent, [container(pk, 1)])
    sync(agent, [])
    assert (get(dev, pk)["status"], get(dev, pk)["end_reason"]) == ("failed", "vanished")


def test_a_reports_stops_are_told_before_its_starts(dev, agent, cluster):
    victim = submit(dev, cluster, cpu="4")
    sync(agent, [container(victim, 1)])
    preemptor = submit(dev, cluster, cpu="4", priority=5)
    assert desired(sync(agent, [container(victim, 1)])) == {preemptor: 1}
    # One report: the victim's container is gone and the preemptor's runs.
    sync(agent, [container(preemptor, 1)])
    history = []
    for pk in (victim, preemptor):
        history += [(e["at"], e["kind"], pk) for e in dev.get(f"{DEPLOYMENTS}{pk}/events/").json()["results"]]
    told = [(kind, pk) for _, kind, pk in sorted(history) if kind in ("stopped", "started")]
    assert told[-2:] == [("stopped", victim), ("started", preemptor)]


def test_the_agent_is_told_which_of_its_volumes_belong_to_finished_deployments(dev, agent, cluster):
    finished = submit(dev, cluster, cpu="1", persist_path="/data")
    active = submit(dev, cluster, cpu="1", persist_path="/data")
    action(dev, finished, "cancel")
    answer = agent.post("/api/v1/agent/sync/", {"containers": [], "volumes": [finished, active, 999_999]},
                        format="json").json()
    assert answer["remove_volumes"] == [finished, 999_999]
    assert {d["id"]: d["persist_path"] for d in answer["deployments"]} == {active: "/data"}


def test_a_requeue_from_a_lost_agent_counts_the_run_it_throws_away(dev, agent, cluster, settings):
    pk = submit(dev, cluster, cpu="2")
    sync(agent, [container(pk, 1)])
    Deployment.objects.filter(pk=pk).update(started_at=timezone.now() - timedelta(seconds=90))
    Agent.objects.update(last_seen_at=timezone.now() - timedelta(seconds=settings.AGENT_LOST_AFTER_SECONDS + 1))
    assert requeue_lost_agents() == 1
    body = get(dev, pk)
    assert body["status"] == "pending" and 90 <= body["lost_seconds"] < 95 and body["preemption_count"] == 0
