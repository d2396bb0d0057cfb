"""Quotas over HTTP: every project listed with its usage, guarantees within capacity, limits above guarantees,
roles and isolation, and a shrink below the guarantees refused."""
import pytest

from clusters.models import ClusterQuota
from organizations.models import Role
from tests.deployments.api import submit
from tests.factories import ClusterFactory, OrganizationFactory, ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)

ZERO = {"cpu": "0.000", "ram": "0.000", "gpu": 0}


@pytest.fixture
def big(organization):
    return ClusterFactory(organization=organization, cpu_limit="16", ram_limit="64", gpu_limit=8)


@pytest.fixture
def research(organization):
    return ProjectFactory(organization=organization, name="research")


def quotas_url(cluster, project=None) -> str:
    return f"/api/v1/clusters/{cluster.pk}/quotas/" + (f"{project.pk}/" if project else "")


def amounts(cpu, ram, gpu) -> dict:
    return {"cpu": cpu, "ram": ram, "gpu": gpu}


def put(client, cluster, project, guaranteed=None, limit=None, weight=1):
    body = {"guaranteed": guaranteed or amounts("0", "0", 0), "limit": limit, "weight": weight}
    return client.put(quotas_url(cluster, project), body, format="json")


def test_every_project_is_listed_with_the_defaults_and_its_usage(organization, dev, big, research):
    submit(dev, big, cpu="1.5", ram="2", gpu=1)
    submit(dev, big, cpu="0.25", ram="0", gpu=2)
    response = dev.get(quotas_url(big))
    assert response.status_code == 200
    assert response.json()["count"] == 2
    assert response.json()["results"] == [
        {"project": organization.default_project.pk, "guaranteed": ZERO, "limit": None, "weight": 1,
         "usage": {"cpu": "1.750", "ram": "2.000", "gpu": 3}},
        {"project": research.pk, "guaranteed": ZERO, "limit": None, "weight": 1, "usage": ZERO},
    ]


def test_admin_sets_a_quota_and_members_read_it(organization, admin, dev, member, big, research):
    response = put(admin, big, research, amounts("4", "16.5", 2), amounts("8", "32", 4), weight=3)
    assert response.status_code == 200, response.content
    expected = {"project": research.pk, "guaranteed": amounts("4.000", "16.500", 2),
                "limit": amounts("8.000", "32.000", 4), "weight": 3, "usage": ZERO}
    assert response.json() == expected
    for client in (dev, member(Role.VIEWER)):
        assert client.get(quotas_url(big)).json()["results"][1] == expected
    # A PUT replaces the whole quota: what it leaves out takes the defaults.
    assert admin.put(quotas_url(big, research), {"weight": 2}, format="json").json() == {
        "project": research.pk, "guaranteed": ZERO, "limit": None, "weight": 2, "usage": ZERO}
    assert ClusterQuota.objects.count() == 1


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.VIEWER])
def test_only_admins_set_quotas(member, big, research, role):
    assert put(member(role), big, research, amounts("1", "1", 1)).status_code == 403
    assert not ClusterQuota.objects.exists()


def test_outsiders_get_404_and_so_does_another_organizations_project(admin, auth_client, big, research):
    assert auth_client.get(quotas_url(big)).status_code == 404
    assert put(auth_client, big, research).status_code == 404
    foreign = ProjectFactory(organization=OrganizationFactory())
    response = put(admin, big, foreign)
    assert response.status_code == 404
    assert put(admin, big, research.__class__(pk=10**9)).status_code == 404
    assert put(admin, ClusterFactory(organization=foreign.organization), research).status_code == 404
    assert not ClusterQuota.objects.exists()


def test_guarantees_never_sum_beyond_the_capacity(organization, admin, big, research):
    assert put(admin, big, organization.default_project, amounts("10", "40", 5)).status_code == 200
    response = put(admin, big, research, amounts("6", "30", 4))
    assert response.status_code == 400
    assert response.json() == {"guaranteed": [
        f"Guarantees on cluster '{big.name}' would sum to 70.000 GB of RAM, more than its capacity of 64.000.",
        f"Guarantees on cluster '{big.name}' would sum to 9 GPU, more than its capacity of 8.",
    ]}
    assert put(admin, big, research, amounts("6", "24", 3)).status_code == 200
    # Changing a project's own guarantee counts it once.
    assert put(admin, big, research, amounts("6", "24", 3)).status_code == 200


def test_a_limit_below_the_guarantee_is_400(admin, big, research):
    response = put(admin, big, research, amounts("4", "4", 2), amounts("2", "4", 1))
    assert response.status_code == 400
    assert response.json() == {"limit": ["The limit of 2.000 CPU is below the guarantee of 4.000.",
                                         "The limit of 1 GPU is below the guarantee of 2."]}


@pytest.mark.parametrize("body,field", [
    ({"guaranteed": {"cpu": "-1", "ram": "0", "gpu": 0}}, "guaranteed"),
    ({"guaranteed": {"cpu": "1.0001", "ram": "0", "gpu": 0}}, "guaranteed"),
    ({"guaranteed": {"cpu": "NaN", "ram": "0", "gpu": 0}}, "guaranteed"),
    ({"guaranteed": {"cpu": "1", "ram": "0"}}, "guaranteed"),
    ({"guaranteed": {"cpu": "1", "ram": "0", "gpu": 0, "disk": 1}}, "guaranteed"),
    ({"guaranteed": None}, "guaranteed"),
    ({"limit": {"cpu": "1", "ram": "1", "gpu": None}}, "limit"),
    ({"limit": {"cpu": "1", "ram": "1"}}, "limit"),
    ({"weight": 0}, "weight"), ({"weight": 1001}, "weight"), ({"weight": 1.5}, "weight"), ({"weight": None}, "weight"),
    ({"priority": 3}, "priority"),
])
def test_bad_quotas_are_400_naming_the_field(admin, big, research, body, field):
    response = admin.put(quotas_url(big, research), body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not ClusterQuota.objects.exists()


def test_weight_at_its_bounds(admin, big, research):
    assert put(admin, big, research, weight=1000).json()["weight"] == 1000
    assert put(admin, big, research, weight=1).json()["weight"] == 1


def test_shrinking_below_the_guarantees_is_409(admin, big, research):
    put(admin, big, research, amounts("4", "16", 4))
    response = admin.patch(f"/api/v1/clusters/{big.pk}/", {"gpu_limit": 3}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": "Cannot set gpu_limit to 3: its projects are guaranteed 4. "
                                         "Lower their quotas first."}
    assert admin.patch(f"/api/v1/clusters/{big.pk}/", {"gpu_limit": 4, "cpu_limit": "4"},
                       format="json").status_code == 200


def test_a_deleted_project_takes_its_quotas_along(admin, big, research):
    put(admin, big, research, amounts("4", "16", 4))
    assert admin.delete(f"/api/v1/projects/{research.pk}/").status_code == 204
    assert not ClusterQuota.objects.exists()


def test_quota_lists_are_paginated_and_strict(admin, big):
    assert admin.get(quotas_url(big) + "?page=2").status_code == 404
    assert admin.get(quotas_url(big) + "?project=1").status_code == 400
    assert admin.post(quotas_url(big), {}, format="json").status_code == 405
