"""The starvation bound through the API: a deployment that has waited reserve_after_seconds gets what frees up."""
from datetime import timedelta

import pytest
from django.test import Client

from accounts.models import User
from deployments.models import Deployment
from tests.deployments.api import action, get, submit
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cluster(organization):
    return ClusterFactory(organization=organization, cpu_limit="8", ram_limit="64", gpu_limit=0)


def cluster_url(cluster) -> str:
    return f"/api/v1/clusters/{cluster.pk}/"


def has_waited(pk: int, seconds: int) -> None:
    """As if it had been submitted that long ago (the wait is measured on the database's clock)."""
    deployment = Deployment.objects.get(pk=pk)
    Deployment.objects.filter(pk=pk).update(created_at=deployment.created_at - timedelta(seconds=seconds))


def test_clusters_reserve_after_ten_minutes_by_default_and_admins_change_it(admin, dev, cluster, organization):
    assert admin.get(cluster_url(cluster)).json()["reserve_after_seconds"] == 600
    assert admin.patch(cluster_url(cluster), {"reserve_after_seconds": 30}).json()["reserve_after_seconds"] == 30
    assert admin.patch(cluster_url(cluster), {"reserve_after_seconds": None}).json()["reserve_after_seconds"] is None
    created = admin.post("/api/v1/clusters/", {"name": "never", "organization": organization.pk, "cpu_limit": "1",
                                               "ram_limit": "1", "gpu_limit": 0, "reserve_after_seconds": None})
    assert created.status_code == 201 and created.json()["reserve_after_seconds"] is None
    assert dev.patch(cluster_url(cluster), {"reserve_after_seconds": 5}).status_code == 403


@pytest.mark.parametrize("bad", [-1, "soon", 1.5, 2**31, True])
def test_a_bad_reserve_after_is_a_400_naming_it(admin, cluster, bad):
    response = admin.patch(cluster_url(cluster), {"reserve_after_seconds": bad})
    assert response.status_code == 400 and "reserve_after_seconds" in response.json()
    assert admin.get(cluster_url(cluster)).json()["reserve_after_seconds"] == 600


def test_a_large_deployment_behind_a_stream_of_small_ones_starts_once_what_held_its_resources_ends(dev, cluster):
    held = [submit(dev, cluster, name=f"small-{i}", cpu="2") for i in range(4)]
    large = submit(dev, cluster, name="large", cpu="8")
    # Before it is due, backfill lets small work slip past it: a small one arriving when another ends starts.
    action(dev, held.pop(0), "complete")
    held.append(submit(dev, cluster, name="slips-past", cpu="2"))
    assert get(dev, held[-1])["status"] == "running" and get(dev, large)["scheduling"]["reason"] == "resources"

    has_waited(large, 601)
    stream = []
    for pk in list(held):  # what held its resources when it became due ends, while small work keeps arriving
        assert get(dev, large)["status"] == "pending"
        action(dev, pk, "complete")
        stream.append(submit(dev, cluster, name="stream", cpu="2"))
    assert get(dev, large)["status"] == "running"
    assert [get(dev, pk)["status"] for pk in stream] == ["pending"] * 4


def test_those_held_back_explain_themselves_and_name_whom_they_yield_to(dev, cluster):
    running = submit(dev, cluster, cpu="6")
    large = submit(dev, cluster, name="large", cpu="8")
    has_waited(large, 601)
    action(dev, submit(dev, cluster, cpu="1"), "complete")  # any pass: the reservation takes effect
    small = submit(dev, cluster, cpu="1")
    body = get(dev, small)
    assert body["status"] == "pending"
    assert body["scheduling"]["reason"] == "reserved" and body["scheduling"]["reserved_for"] == large
    assert f"#{large}" in body["status_reason"] and body["status_reason"].startswith("Held back")
    assert get(dev, large)["scheduling"]["reason"] == "resources"  # the reserved one waits for resources
    dry = dev.post("/api/v1/deployments/dry-run/", {"name": "x", "cluster": cluster.pk, "docker_image": "i",
                                                    "cpu_required": "1"}).json()
    assert dry["decision"] == "wait" and dry["scheduling"]["reason"] == "reserved"
    assert dry["scheduling"]["reserved_for"] == large
    assert get(dev, running)["status"] == "running"


def test_higher_priority_work_is_never_held_back_by_a_reservation(dev, cluster):
    submit(dev, cluster, cpu="6")
    large = submit(dev, cluster, name="large", cpu="8")
    has_waited(large, 601)
    held_back = submit(dev, cluster, cpu="1")
    assert get(dev, held_back)["status"] == "pending"
    urgent = submit(dev, cluster, cpu="2", priority=5)
    assert get(dev, urgent)["status"] == "running"


def test_turning_the_bound_off_places_what_it_held_back_at_once(admin, dev, cluster):
    submit(dev, cluster, cpu="6")
    large = submit(dev, cluster, name="large", cpu="8")
    has_waited(large, 601)
    held_back = submit(dev, cluster, cpu="2")
    assert get(dev, held_back)["scheduling"]["reason"] == "reserved"
    assert admin.patch(cluster_url(cluster), {"reserve_after_seconds": None}).status_code == 200
    assert get(dev, held_back)["status"] == "running"
    assert get(dev, large)["scheduling"]["reason"] == "resources"


def test_a_deployment_larger_than_the_cluster_reserves_nothing(dev, cluster):
    submit(dev, cluster, cpu="6")
    huge = Deployment.objects.create(cluster=cluster, project=cluster.organization.default_project, name="huge",
                                     docker_image="i", cpu_required=9).pk
    has_waited(huge, 601)
    assert get(dev, submit(dev, cluster, cpu="2"))["status"] == "running"


def test_the_admin_shows_the_reservation_on_its_cluster(dev, cluster):
    operator = Client()
    operator.force_login(User.objects.create_superuser(username="op", email="op@example.com", password="x"))
    page = f"/admin/clusters/cluster/{cluster.pk}/change/"
    submit(dev, cluster, cpu="6")
    large = submit(dev, cluster, name="large", cpu="8")
    assert "Reservation (starvation bound)" in operator.get(page).content.decode()
    has_waited(large, 601)
    action(dev, submit(dev, cluster, cpu="1"), "complete")
    assert (f"deployment #{large} has waited longer than 600 s: 2.000 CPU, 1.000 GB RAM, 0 GPU of what is free is "
            "set aside for it") in operator.get(page).content.decode()
