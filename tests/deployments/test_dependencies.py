"""Deployments that wait on others: start order, failure propagation, cross-cluster dependents, rejections."""
import threading

import pytest

from deployments.models import Deployment
from organizations.models import Role
from tests.deployments.api import DEPLOYMENTS, action, get, status, submit
from tests.factories import ClusterFactory, MembershipFactory, OrganizationFactory
from tests.threads import join_clients, start_clients

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cluster(organization):
    return ClusterFactory(organization=organization, cpu_limit="8", ram_limit="32", gpu_limit=2)


def test_a_chain_runs_in_order(dev, cluster):
    train = submit(dev, cluster, name="train")
    evaluate = submit(dev, cluster, name="evaluate", depends_on=[train])
    serve = submit(dev, cluster, name="serve", depends_on=[evaluate])
    assert [status(dev, pk) for pk in (train, evaluate, serve)] == ["running", "pending", "pending"]
    assert get(dev, evaluate)["status_reason"] == f"Waiting for dependencies #{train} (running)."
    assert get(dev, train)["dependents"] == [evaluate]
    assert get(dev, evaluate)["depends_on"] == [train]
    action(dev, train, "complete")
    assert [status(dev, pk) for pk in (evaluate, serve)] == ["running", "pending"]
    action(dev, evaluate, "complete")
    assert status(dev, serve) == "running"
    kinds = [e["kind"] for e in dev.get(f"{DEPLOYMENTS}{serve}/events/").json()["results"]]
    assert kinds == ["queued", "dependencies_resolved", "scheduled"]


def test_a_diamond_waits_for_both_branches(dev, cluster):
    root = submit(dev, cluster, name="root")
    left = submit(dev, cluster, name="left", depends_on=[root])
    right = submit(dev, cluster, name="right", depends_on=[root])
    join = submit(dev, cluster, name="join", depends_on=[left, right])
    action(dev, root, "complete")
    assert [status(dev, pk) for pk in (left, right, join)] == ["running", "running", "pending"]
    action(dev, left, "complete")
    assert status(dev, join) == "pending"
    assert get(dev, join)["status_reason"] == f"Waiting for dependencies #{right} (running)."
    action(dev, right, "complete")
    assert status(dev, join) == "running"


@pytest.mark.parametrize("verb,word", [("fail", "failed"), ("cancel", "cancelled")])
def test_a_failure_cancels_everything_downstream_naming_the_root_cause(dev, cluster, verb, word):
    train = submit(dev, cluster, name="train")
    evaluate = submit(dev, cluster, name="evaluate", depends_on=[train])
    serve = submit(dev, cluster, name="serve", depends_on=[evaluate])
    unrelated = submit(dev, cluster, name="unrelated")
    action(dev, train, verb)
    reason = f"Cancelled: it depends on #{train} 'train', which {word}."
    for pk in (evaluate, serve):
        body = get(dev, pk)
        assert body["status"] == "cancelled" and body["status_reason"] == reason and body["finished_at"]
        events = dev.get(f"{DEPLOYMENTS}{pk}/events/").json()["results"]
        assert events[-1] == {"at": events[-1]["at"], "kind": "cancelled", "message": reason}
    assert status(dev, unrelated) == "running"


def test_dependents_on_another_cluster_start_when_the_dependency_completes(dev, cluster, organization):
    other = ClusterFactory(organization=organization)
    train = submit(dev, cluster, name="train")
    serve = submit(dev, other, name="serve", depends_on=[train])
    assert status(dev, serve) == "pending"
    action(dev, train, "complete")
    assert status(dev, serve) == "running"


def test_depending_on_a_failed_deployment_is_400(dev, cluster):
    train = submit(dev, cluster, name="train")
    action(dev, train, "fail")
    response = dev.post(DEPLOYMENTS, {"name": "x", "cluster": cluster.pk, "docker_image": "i", "depends_on": [train]})
    assert response.status_code == 400
    assert response.json() == {"depends_on": [f"These dependencies can never complete: #{train} is failed."]}


def test_unknown_foreign_and_duplicate_dependencies_are_400_naming_the_ids(dev, cluster):
    mine = submit(dev, cluster)
    stranger_org = OrganizationFactory()
    stranger = MembershipFactory(organization=stranger_org, role=Role.ADMIN).user
    foreign = Deployment.objects.create(name="f", cluster=ClusterFactory(organization=stranger_org),
                                        project=stranger_org.default_project, docker_image="i", created_by=stranger)
    cases = [
        ([mine, mine], f"Listed more than once: {mine}."),
        ([mine, 999999], "No deployment in this organization with id 999999."),
        ([foreign.pk], f"No deployment in this organization with id {foreign.pk}."),
    ]
    for depends_on, message in cases:
        response = dev.post(DEPLOYMENTS, {"name": "x", "cluster": cluster.pk, "docker_image": "i",
                                          "depends_on": depends_on})
        assert response.status_code == 400
        assert response.json() == {"depends_on": [message]}
    assert Deployment.objects.count() == 2


def test_dependencies_cannot_be_edited_after_creation(dev, cluster):
    first = submit(dev, cluster)
    second = submit(dev, cluster)
    response = dev.patch(f"{DEPLOYMENTS}{second}/", {"depends_on": [first]})
    assert response.status_code == 200
    assert response.json()["depends_on"] == []


@pytest.mark.parametrize("attempt", range(5))
def test_a_dependent_created_while_its_dependency_fails_is_never_left_waiting(dev, cluster, attempt):
    train = submit(dev, cluster, name="train")
    barrier = threading.Barrier(2)
    results = {}

    def fail_dependency(_seed):
        barrier.wait()
        results["fail"] = action(dev, train, "fail").status_code

    def create_dependent(_seed):
        barrier.wait()
        results["create"] = dev.post(DEPLOYMENTS, {"name": "eval", "cluster": cluster.pk, "docker_image": "i",
                                                   "depends_on": [train]})

    join_clients(start_clients(fail_dependency, range(1)) + start_clients(create_dependent, range(1)), timeout=30)
    assert results["fail"] == 200
    created = results["create"]
    if created.status_code == 201:
        assert status(dev, created.json()["id"]) == "cancelled"
    else:
        assert created.status_code == 400
        assert not Deployment.objects.filter(name="eval").exists()


@pytest.mark.parametrize("attempt", range(5))
def test_both_branches_completing_at_once_on_two_clusters_still_release_the_join(dev, cluster, organization, attempt):
    other = ClusterFactory(organization=organization)
    left, right = submit(dev, cluster, name="left"), submit(dev, other, name="right")
    join = submit(dev, cluster, name="join", depends_on=[left, right])
    barrier = threading.Barrier(2)

    def complete(seed):
        barrier.wait()
        assert action(dev, (left, right)[seed], "complete").status_code == 200

    join_clients(start_clients(complete, range(2)), timeout=30)
    assert status(dev, join) == "running"
    kinds = [e["kind"] for e in dev.get(f"{DEPLOYMENTS}{join}/events/").json()["results"]]
    assert kinds == ["queued", "dependencies_resolved", "scheduled"]
