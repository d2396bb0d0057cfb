"""Watching over real HTTP: a deployment's events (`?watch=true`) and the deployment list (`?watch=true`)."""
import json

import pytest

from tests.streams.service import Cluster, User, lines_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_events_stream_the_history_then_new_events_and_end_after_the_finish(service):
    user = User(service)
    cluster = Cluster(user)
    pk = cluster.submit()
    with user.stream(f"/deployments/{pk}/events/?watch=true") as source:
        events = source.iter_sse()
        history = lines_until(events, 2)
        assert [kind for kind, _, _ in history] == ["queued", "scheduled"]
        cluster.running.add(pk)
        cluster.sync([cluster._container(pk, "running")])
        started = next(events)
        assert started.event == "started" and json.loads(started.data)["kind"] == "started"
        cluster.exit(pk, 0)
        rest = [(e.event, e.data) for e in events]
    assert [kind for kind, _ in rest] == ["completed", "end"]
    assert user.api.get(f"/deployments/{pk}/events/?watch=true", headers={"Last-Event-ID": started.id}).status_code \
        == 200  # `completed` comes after it
    last = json.loads(rest[0][1])
    assert last["kind"] == "completed"
    with user.stream(f"/deployments/{pk}/events/?watch=true", last_event_id=history[1][1]) as source:
        assert [e.event for e in source.iter_sse()] == ["started", "completed", "end"]


def test_the_list_watch_sends_each_change_of_what_the_caller_sees_with_the_filters(service):
    user = User(service)
    cluster = Cluster(user)
    other = Cluster(user)  # another cluster of the same user: filtered out by ?cluster=
    running = cluster.run()
    with user.stream(f"/deployments/?watch=true&cluster={cluster.id}") as source:
        events = source.iter_sse()
        first = next(events)  # without Last-Event-ID: what is pending or running now
        assert first.event == "deployment" and json.loads(first.data)["id"] == running
        other.run()
        fresh = cluster.submit()
        seen = {}
        while seen.get(fresh) != "running":
            event = next(events)
            body = json.loads(event.data)
            assert body["cluster"] == cluster.id
            seen[body["id"]] = body["status"]
        cluster.exit(running, 0)
        while seen.get(running) != "completed":
            event = next(events)
            seen[json.loads(event.data)["id"]] = json.loads(event.data)["status"]
        resume_from = event.id
    cluster.exit(fresh, 4)  # while no one watches
    with user.stream(f"/deployments/?watch=true&cluster={cluster.id}", last_event_id=resume_from) as source:
        events = source.iter_sse()
        while seen.get(fresh) != "failed":  # at least once per change: what changed just before may come again
            body = json.loads(next(events).data)
            seen[body["id"]] = body["status"]


def test_a_deployment_leaving_the_watchs_filter_is_sent_once_as_it_now_is(service):
    user = User(service)
    cluster = Cluster(user)
    running = cluster.run()
    with user.stream(f"/deployments/?watch=true&status=running&cluster={cluster.id}") as source:
        events = source.iter_sse()
        assert json.loads(next(events).data)["id"] == running
        cluster.exit(running, 0)
        # No longer running: sent once more, as it now is (after, maybe, its latest change again: at least once).
        statuses = []
        while not statuses or statuses[-1] == "running":
            body = json.loads(next(events).data)
            assert body["id"] == running
            statuses.append(body["status"])
        assert statuses[-1] == "completed"
        fresh = cluster.run()
        body = json.loads(next(events).data)  # and then nothing more of the completed one
        while body["status"] != "running" or body["id"] != fresh:
            assert body["id"] == fresh
            body = json.loads(next(events).data)


def test_another_tenant_watching_sees_nothing_of_it_and_gets_404_for_its_events(service):
    owner, stranger = User(service), User(service)
    cluster = Cluster(owner)
    pk = cluster.run()
    assert stranger.api.get(f"/deployments/{pk}/events/?watch=true").status_code == 404
    Cluster(stranger).run()  # the stranger's own deployment, so the watch has something to send
    with stranger.stream("/deployments/?watch=true") as source:
        body = json.loads(next(source.iter_sse()).data)
    assert body["id"] != pk
