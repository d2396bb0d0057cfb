"""Deployments through the API, with the scheduler running after every commit as it does in production.

Each test is transactional so that scheduling really runs on commit, as the worker would.
"""
import pytest

from clusters.models import Cluster
from deployments.models import Deployment
from organizations.models import Role
from tests.conftest import client_for
from tests.deployments.api import DEPLOYMENTS, action, available, get, status, submit
from tests.factories import ClusterFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_created_deployment_answers_pending_then_runs_when_it_fits(dev, cluster):
    response = dev.post(DEPLOYMENTS, {"name": "train", "cluster": cluster.pk, "docker_image": "img:1",
                                      "cpu_required": "1.5", "ram_required": "2.25", "gpu_required": 1})
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    assert body["created_by"] == dev.user.pk and body["organization"] == cluster.organization_id
    detail = get(dev, body["id"])
    assert detail["status"] == "running" and detail["started_at"]
    assert detail["status_reason"] == f"Running on cluster '{cluster.name}'."
    assert available(dev, cluster) == ("2.500", "13.750", 1)


def test_what_does_not_fit_queues_with_a_reason(dev, cluster):
    submit(dev, cluster, gpu=2)
    waiting = submit(dev, cluster, gpu=1)
    body = get(dev, waiting)
    assert body["status"] == "pending"
    assert body["status_reason"] == "Needs 1 GPU, 0 free."


def test_status_reason_counts_higher_priority_deployments_ahead(dev, cluster):
    submit(dev, cluster, gpu=2, priority=0)
    submit(dev, cluster, gpu=2, priority=0, name="same-priority")
    for _ in range(3):
        submit(dev, cluster, gpu=2, priority=-1, name="ahead")
    last = submit(dev, cluster, gpu=1, cpu="0", ram="0", priority=-5)
    assert get(dev, last)["status_reason"] == "Needs 1 GPU, 0 free; 4 deployments of higher priority ahead."


def test_each_completion_starts_the_next_in_queue_order(dev, cluster):
    blocker = submit(dev, cluster, cpu="4", priority=100)
    low = submit(dev, cluster, cpu="4", priority=1)
    high_first = submit(dev, cluster, cpu="4", priority=5)
    high_second = submit(dev, cluster, cpu="4", priority=5)
    action(dev, blocker, "complete")
    assert [status(dev, pk) for pk in (high_first, high_second, low)] == ["running", "pending", "pending"]
    action(dev, high_first, "complete")
    assert [status(dev, pk) for pk in (high_second, low)] == ["running", "pending"]
    action(dev, high_second, "complete")
    assert status(dev, low) == "running"


def test_higher_priority_preempts_lower_and_the_victim_resumes_later(dev, cluster):
    victim = submit(dev, cluster, gpu=2, priority=1, name="batch")
    urgent = submit(dev, cluster, gpu=2, priority=10, name="urgent")
    assert status(dev, urgent) == "running"
    body = get(dev, victim)
    assert body["status"] == "pending" and body["preemption_count"] == 1 and body["started_at"] is None
    assert body["status_reason"] == f"Preempted by deployment #{urgent} (priority 10). Now needs 2 GPU, 0 free."
    action(dev, urgent, "complete")
    resumed = get(dev, victim)
    assert resumed["status"] == "running" and resumed["preemption_count"] == 1
    kinds = [e["kind"] for e in dev.get(f"{DEPLOYMENTS}{victim}/events/").json()["results"]]
    assert kinds == ["queued", "scheduled", "preempted", "requeued", "scheduled"]


def test_preemption_evicts_lowest_priority_then_most_recent_and_reprieves_the_rest(dev, cluster):
    lowest = submit(dev, cluster, cpu="1", ram="0", priority=1, name="lowest")
    older = submit(dev, cluster, cpu="1", ram="0", priority=2, name="older")
    newer = submit(dev, cluster, cpu="1", ram="0", priority=2, name="newer")
    big = submit(dev, cluster, cpu="1", ram="0", gpu=2, priority=3, name="keeps-gpus")
    urgent = submit(dev, cluster, cpu="2", ram="0", priority=9, name="urgent")
    assert status(dev, urgent) == "running"
    assert [status(dev, pk) for pk in (lowest, older, newer, big)] == ["pending", "running", "pending", "running"]


def test_greedy_victims_that_were_not_needed_are_reprieved(dev, cluster):
    cpu_only = submit(dev, cluster, cpu="2", ram="0", priority=1, name="cpu-only")
    gpu_holder = submit(dev, cluster, cpu="0", ram="0", gpu=2, priority=2, name="gpu-holder")
    urgent = submit(dev, cluster, cpu="0", ram="0", gpu=1, priority=9, name="urgent")
    assert status(dev, urgent) == "running"
    assert status(dev, gpu_holder) == "pending"
    assert status(dev, cpu_only) == "running"
    assert get(dev, cpu_only)["preemption_count"] == 0


def test_equal_or_higher_priority_is_never_preempted(dev, cluster):
    running = submit(dev, cluster, gpu=2, priority=5)
    equal = submit(dev, cluster, gpu=2, priority=5)
    lower = submit(dev, cluster, gpu=2, priority=4)
    assert [status(dev, pk) for pk in (running, equal, lower)] == ["running", "pending", "pending"]
    assert get(dev, running)["preemption_count"] == 0


def test_a_big_pending_deployment_does_not_block_smaller_ones(dev, cluster):
    submit(dev, cluster, cpu="3", ram="1", priority=10)
    big = submit(dev, cluster, cpu="2", ram="1", priority=5)
    small = submit(dev, cluster, cpu="1", ram="1", priority=0)
    assert status(dev, big) == "pending"
    assert status(dev, small) == "running"


def test_request_larger_than_the_cluster_is_400_naming_the_resource(dev, cluster):
    response = dev.post(DEPLOYMENTS, {"name": "huge", "cluster": cluster.pk, "docker_image": "img",
                                      "gpu_required": 3})
    assert response.status_code == 400
    assert response.json() == {
        "gpu_required": ["Requests 3 GPU but the cluster has 2 in all, so it could never start."]
    }
    assert not Deployment.objects.exists()


@pytest.mark.parametrize("field,value", [
    ("cpu_required", "-1"), ("cpu_required", "NaN"), ("cpu_required", "Infinity"), ("cpu_required", "-Infinity"),
    ("cpu_required", "0.0001"), ("ram_required", "1e300"), ("ram_required", "ten"), ("gpu_required", -1),
    ("gpu_required", 2**40), ("priority", 2**31), ("priority", -(2**31) - 1), ("priority", "high"),
    ("cluster", 999999), ("docker_image", ""), ("name", "x" * 201), ("depends_on", [0]), ("depends_on", "1"),
])
def test_bad_input_is_400_naming_the_field_and_stores_nothing(dev, cluster, field, value):
    body = {"name": "job", "cluster": cluster.pk, "docker_image": "img", field: value}
    response = dev.post(DEPLOYMENTS, body)
    assert response.status_code == 400
    assert field in response.json()
    assert not Deployment.objects.exists()
    assert dev.get(DEPLOYMENTS).status_code == 200


def test_json_nan_and_infinity_literals_are_400(dev, cluster):
    for literal in ("NaN", "Infinity", "-Infinity"):
        raw = f'{{"name": "j", "cluster": {cluster.pk}, "docker_image": "i", "cpu_required": {literal}}}'
        response = dev.generic("POST", DEPLOYMENTS, raw, content_type="application/json")
        assert response.status_code == 400
    assert not Deployment.objects.exists()


def test_status_is_not_writable(dev, cluster):
    pk = submit(dev, cluster, gpu=2)
    waiting = submit(dev, cluster, gpu=2)
    response = dev.patch(f"{DEPLOYMENTS}{waiting}/", {"status": "running", "name": "renamed"})
    assert response.status_code == 200
    assert response.json()["status"] == "pending" and response.json()["name"] == "renamed"
    created = dev.post(DEPLOYMENTS, {"name": "x", "cluster": cluster.pk, "docker_image": "i", "status": "completed"})
    assert created.json()["status"] == "pending"
    assert status(dev, pk) == "running"


def test_resources_and_cluster_are_fixed_once_scheduled(dev, cluster, organization):
    running = submit(dev, cluster, gpu=1)
    other = ClusterFactory(organization=organization)
    for change in ({"gpu_required": 2}, {"cpu_required": "2"}, {"cluster": other.pk}):
        response = dev.patch(f"{DEPLOYMENTS}{running}/", change)
        assert response.status_code == 409
        assert "cannot change once a deployment has been scheduled" in response.json()["detail"]
    assert get(dev, running)["gpu_required"] == 1


def test_a_never_scheduled_deployment_can_be_resized_and_then_runs(dev, cluster):
    submit(dev, cluster, gpu=2)
    waiting = submit(dev, cluster, gpu=1, cpu="1")
    response = dev.patch(f"{DEPLOYMENTS}{waiting}/", {"gpu_required": 0})
    assert response.status_code == 200
    assert status(dev, waiting) == "running"


def test_cancel_pending_and_running(dev, cluster):
    running = submit(dev, cluster, gpu=2)
    waiting = submit(dev, cluster, gpu=2)
    response = action(dev, waiting, "cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert response.json()["status_reason"] == f"Cancelled by {dev.user.username}."
    assert action(dev, running, "cancel").json()["status"] == "cancelled"
    assert available(dev, cluster) == ("4.000", "16.000", 2)


def test_complete_and_fail_free_resources_and_start_waiting_work(dev, cluster):
    first = submit(dev, cluster, gpu=2)
    second = submit(dev, cluster, gpu=2)
    third = submit(dev, cluster, gpu=2)
    completed = action(dev, first, "complete")
    assert completed.status_code == 200 and completed.json()["finished_at"]
    assert status(dev, second) == "running"
    assert action(dev, second, "fail").json()["status"] == "failed"
    assert status(dev, third) == "running"


@pytest.mark.parametrize("setup,verb", [
    ("pending", "complete"), ("pending", "fail"), ("completed", "cancel"), ("completed", "complete"),
    ("cancelled", "cancel"), ("failed", "complete"),
])
def test_transitions_that_do_not_apply_are_409(dev, cluster, setup, verb):
    submit(dev, cluster, gpu=2)
    pk = submit(dev, cluster, gpu=2)
    if setup != "pending":
        Deployment.objects.filter(pk=pk).update(status=setup)
    response = action(dev, pk, verb)
    assert response.status_code == 409
    assert response.json()["detail"].startswith(f"A {setup} deployment cannot be")
    assert status(dev, pk) == setup


def test_events_tell_the_whole_story_in_order(dev, cluster):
    pk = submit(dev, cluster, gpu=1)
    action(dev, pk, "complete")
    events = dev.get(f"{DEPLOYMENTS}{pk}/events").json()["results"]
    assert [e["kind"] for e in events] == ["queued", "scheduled", "completed"]
    assert events[0]["message"] == f"Queued on cluster '{cluster.name}' with priority 0."
    assert events[2]["message"] == f"Completed by {dev.user.username}."
    assert all(set(e) == {"at", "kind", "message"} for e in events)


def test_resize_up_places_pending_work_at_once(member, dev, cluster):
    submit(dev, cluster, gpu=2)
    waiting = submit(dev, cluster, gpu=2)
    response = member(Role.ADMIN).patch(f"/api/v1/clusters/{cluster.pk}/", {"gpu_limit": 4})
    assert response.status_code == 200
    assert status(dev, waiting) == "running"
    assert available(dev, cluster) == ("2.000", "14.000", 0)


def test_resize_below_what_running_deployments_hold_is_409(member, dev, cluster):
    submit(dev, cluster, cpu="3")
    admin = member(Role.ADMIN)
    response = admin.patch(f"/api/v1/clusters/{cluster.pk}/", {"cpu_limit": "2.999"})
    assert response.status_code == 409
    assert "cpu_limit" in response.json()["detail"]
    assert admin.patch(f"/api/v1/clusters/{cluster.pk}/", {"cpu_limit": "3"}).status_code == 200
    assert available(dev, cluster) == ("0.000", "15.000", 2)


def test_a_cluster_with_active_work_cannot_be_deleted(member, dev, cluster):
    pk = submit(dev, cluster)
    admin = member(Role.ADMIN)
    response = admin.delete(f"/api/v1/clusters/{cluster.pk}/")
    assert response.status_code == 409
    assert "1 pending or running" in response.json()["detail"]
    action(dev, pk, "complete")
    assert admin.delete(f"/api/v1/clusters/{cluster.pk}/").status_code == 204
    assert not Cluster.objects.filter(pk=cluster.pk).exists()


def test_viewers_read_but_cannot_submit_or_act(member, dev, cluster):
    pk = submit(dev, cluster)
    viewer = member(Role.VIEWER)
    assert viewer.get(f"{DEPLOYMENTS}{pk}/").status_code == 200
    assert viewer.post(DEPLOYMENTS, {"name": "x", "cluster": cluster.pk, "docker_image": "i"}).status_code == 403
    for verb in ("complete", "fail", "cancel"):
        assert action(viewer, pk, verb).status_code == 403
    assert viewer.patch(f"{DEPLOYMENTS}{pk}/", {"name": "y"}).status_code == 403
    assert status(dev, pk) == "running"


def test_other_tenants_deployments_are_invisible(dev, cluster):
    pk = submit(dev, cluster)
    outsider = client_for(UserFactory())
    for method, path in [("get", f"{DEPLOYMENTS}{pk}/"), ("get", f"{DEPLOYMENTS}{pk}/events/"),
                         ("post", f"{DEPLOYMENTS}{pk}/cancel/"), ("patch", f"{DEPLOYMENTS}{pk}/")]:
        assert getattr(outsider, method)(path).status_code == 404
    assert outsider.get(DEPLOYMENTS).json()["count"] == 0
    for params in ({"cluster": cluster.pk}, {"organization": cluster.organization_id}):
        theirs, nobodys = outsider.get(DEPLOYMENTS, params), outsider.get(DEPLOYMENTS, dict.fromkeys(params, 999999))
        assert theirs.status_code == nobodys.status_code == 200
        assert theirs.json() == nobodys.json() == {"count": 0, "next": None, "previous": None, "results": []}
    response = outsider.post(DEPLOYMENTS, {"name": "x", "cluster": cluster.pk, "docker_image": "i"})
    assert response.status_code == 400 and "does not exist" in response.json()["cluster"][0]
    assert status(dev, pk) == "running"


def test_list_filters_by_status_cluster_organization_and_priority(dev, cluster, organization):
    running = submit(dev, cluster, gpu=2, priority=3)
    waiting = submit(dev, cluster, gpu=2, priority=1)
    other_cluster = ClusterFactory(organization=organization)
    elsewhere = submit(dev, other_cluster)

    def ids(**params):
        response = dev.get(DEPLOYMENTS, params)
        assert response.status_code == 200
        return sorted(d["id"] for d in response.json()["results"])

    assert ids(status="pending") == [waiting]
    assert ids(status="running") == sorted([running, elsewhere])
    assert ids(cluster=other_cluster.pk) == [elsewhere]
    assert ids(organization=organization.pk) == sorted([running, waiting, elsewhere])
    assert ids(priority=3) == [running]
    assert dev.get(DEPLOYMENTS, {"status": "bogus"}).status_code == 400
    assert dev.get(DEPLOYMENTS, {"priority": "1.5"}).status_code == 400


def test_list_queries_do_not_grow_with_the_page(dev, cluster, django_assert_max_num_queries):
    for n in range(30):
        submit(dev, cluster, cpu="0.1", ram="0.1", name=f"job{n}")
    with django_assert_max_num_queries(8):
        response = dev.get(DEPLOYMENTS)
    assert response.json()["count"] == 30


def test_a_deployment_the_cluster_shrank_below_says_it_can_never_start(member, dev, cluster):
    submit(dev, cluster, gpu=1, priority=10, name="blocker")
    big = submit(dev, cluster, gpu=2, name="big")
    assert status(dev, big) == "pending"
    admin = member(Role.ADMIN)
    assert admin.patch(f"/api/v1/clusters/{cluster.pk}/", {"gpu_limit": 1}).status_code == 200
    assert get(dev, big)["status_reason"] == "Can never start here: needs 2 GPU, 1 in the whole cluster."
    assert admin.patch(f"/api/v1/clusters/{cluster.pk}/", {"gpu_limit": 3}).status_code == 200
    assert status(dev, big) == "running"


def test_a_never_scheduled_deployment_can_move_within_its_organization_and_then_runs(dev, cluster, organization):
    submit(dev, cluster, gpu=2)
    waiting = submit(dev, cluster, gpu=2)
    roomy = ClusterFactory(organization=organization, gpu_limit=2)
    response = dev.patch(f"{DEPLOYMENTS}{waiting}/", {"cluster": roomy.pk})
    assert response.status_code == 200
    assert get(dev, waiting)["cluster"] == roomy.pk and status(dev, waiting) == "running"
    assert available(dev, cluster) == ("3.000", "15.000", 0)


def test_a_deployment_cannot_move_to_another_organizations_cluster(dev, cluster):
    submit(dev, cluster, gpu=2)
    waiting = submit(dev, cluster, gpu=2)
    elsewhere = ClusterFactory()
    MembershipFactory(organization=elsewhere.organization, user=dev.user, role=Role.ADMIN)
    response = dev.patch(f"{DEPLOYMENTS}{waiting}/", {"cluster": elsewhere.pk})
    assert response.status_code == 400
    assert response.json() == {"cluster": ["A deployment cannot move to another organization's cluster."]}
    assert get(dev, waiting)["cluster"] == cluster.pk
