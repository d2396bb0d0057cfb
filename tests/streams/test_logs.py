"""Following a deployment's output over real HTTP: `GET /api/v1/deployments/{id}/logs/?follow=true`."""
import threading

import httpx
import pytest

from tests.streams.service import Cluster, User, lines_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def follow(pk: int, **query) -> str:
    return f"/deployments/{pk}/logs/?follow=true" + "".join(f"&{k}={v}" for k, v in query.items())


def test_a_follower_receives_the_tail_then_lines_written_after_it_connected_in_order(service):
    user = User(service)
    cluster = Cluster(user)
    pk = cluster.run()
    cluster.write(pk, "one\ntwo\nthree\n")
    with user.stream(follow(pk, tail=2)) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        events = source.iter_sse()
        assert lines_until(events, 2) == [("message", "2", "two"), ("message", "3", "three")]
        cluster.write(pk, "four\nfi")
        cluster.write(pk, "ve\r\nsix\n")  # a line split across chunks, and one that ends with CRLF
        assert lines_until(events, 3) == [("message", "4", "four"), ("message", "5", "five"), ("message", "6", "six")]


def test_reconnecting_with_last_event_id_loses_and_repeats_nothing(service):
    user = User(service)
    cluster = Cluster(user)
    pk = cluster.run()
    cluster.write(pk, "".join(f"line {i}\n" for i in range(5)))
    with user.stream(follow(pk, tail=100)) as source:
        received = lines_until(source.iter_sse(), 3)
    cluster.write(pk, "".join(f"line {i}\n" for i in range(5, 8)))  # while no one follows
    with user.stream(follow(pk), last_event_id=received[-1][1]) as source:
        events = source.iter_sse()
        received += lines_until(events, 5)
        cluster.write(pk, "line 8\n")
        received += lines_until(events, 1)
    assert [data for _, _, data in received] == [f"line {i}" for i in range(9)]
    assert [int(id) for _, id, _ in received] == list(range(1, 10))


def test_the_stream_ends_after_the_deployment_finishes_and_a_resume_after_the_end_is_204(service):
    user = User(service)
    cluster = Cluster(user)
    pk = cluster.run()
    with user.stream(follow(pk)) as source:
        events = source.iter_sse()
        cluster.write(pk, "working\n")
        assert lines_until(events, 1) == [("message", "1", "working")]
        cluster.write(pk, "last words without a newline")
        cluster.exit(pk, 3)
        rest = [(e.event, e.id, e.data) for e in events]  # ends: the server closes after `end`
    assert rest == [("message", "2", "last words without a newline"), ("end", "2", "")]
    assert user.api.get(follow(pk), headers={"Last-Event-ID": "2"}).status_code == 204
    with user.stream(follow(pk, tail=1)) as source:  # a newcomer still gets the tail, then the end
        assert [(e.event, e.data) for e in source.iter_sse()] == [("message", "last words without a newline"),
                                                                   ("end", "")]


def test_a_pending_deployment_is_followed_until_it_runs(service):
    user = User(service)
    cluster = Cluster(user)
    first = cluster.run()
    waiting = cluster.submit(depends_on=[first])
    assert user.get(f"/deployments/{waiting}/")["status"] == "pending"
    with user.stream(follow(waiting)) as source:
        events = source.iter_sse()
        cluster.exit(first, 0)  # its dependency completes: it starts
        assert user.get(f"/deployments/{waiting}/")["status"] == "running"
        cluster.running.add(waiting)
        cluster.sync([cluster._container(waiting, "running")])
        cluster.write(waiting, "finally\n")
        assert lines_until(events, 1) == [("message", "1", "finally")]


def test_strangers_get_401_and_other_tenants_404_as_json(service):
    owner = User(service)
    cluster = Cluster(owner)
    pk = cluster.run()
    anonymous = httpx.get(f"{service}/api/v1{follow(pk)}", headers={"Accept": "text/event-stream"})
    assert anonymous.status_code == 401 and "detail" in anonymous.json()
    stranger = User(service)
    other = stranger.api.get(follow(pk), headers={"Accept": "text/event-stream"})
    assert other.status_code == 404 and other.json() == {"detail": "No Deployment matches the given query."}
    assert owner.api.get(follow(pk), headers={"Last-Event-ID": "x"}).status_code == 400
    assert owner.api.get(f"/deployments/{pk}/logs/?follow=maybe").status_code == 400


def test_many_followers_each_receive_every_line(service):
    user = User(service)
    cluster = Cluster(user)
    pk = cluster.run()
    followers, connected, received = 40, threading.Barrier(41, timeout=30), {}

    def follower(n: int) -> None:
        with user.stream(follow(pk)) as source:
            events = source.iter_sse()
            cluster_ready = next(events)  # the tail's one line: connected
            connected.wait()
            received[n] = [cluster_ready.data] + [e.data for e in events if e.event == "message"]

    cluster.write(pk, "hello\n")
    threads = [threading.Thread(target=follower, args=(n,)) for n in range(followers)]
    for thread in threads:
        thread.start()
    connected.wait()
    for i in range(10):
        cluster.write(pk, f"line {i}\n")
    cluster.exit(pk, 0)
    for thread in threads:
        thread.join(timeout=60)
    assert received == {n: ["hello"] + [f"line {i}" for i in range(10)] for n in range(followers)}


def test_output_trimmed_away_while_disconnected_starts_the_resume_with_reset(service):
    user = User(service)
    cluster = Cluster(user)
    pk = cluster.run()
    line = "x" * 1023 + "\n"
    for _ in range(3):  # 3 MiB: more than the 2 MiB after which the oldest output is dropped
        cluster.write(pk, line * 1024)
    with user.stream(follow(pk), last_event_id=1) as source:
        events = source.iter_sse()
        reset, first = next(events), next(events)
    assert reset.event == "reset"
    assert int(first.id) > 2 and first.data == "x" * 1023


def test_an_idle_stream_gets_comment_lines(service):
    user = User(service)
    cluster = Cluster(user)
    pk = cluster.run()
    with user.stream(follow(pk)) as source:
        lines = source.response.iter_lines()
        assert next(line for line in lines if line) == ": keep-alive"  # the server's heartbeat is 1 s here
