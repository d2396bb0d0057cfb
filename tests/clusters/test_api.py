"""Clusters over HTTP: roles, exact availability, resizing, deletion, bad input, isolation."""
import pytest

from clusters.models import Cluster
from organizations.models import Role
from tests.conftest import client_for
from tests.factories import ClusterFactory, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

CLUSTERS = "/api/v1/clusters/"


def new_cluster(client, organization, **overrides):
    body = {"name": "gpu-pool", "organization": organization.pk, "cpu_limit": "16", "ram_limit": "64.5",
            "gpu_limit": 4, **overrides}
    return client.post(CLUSTERS, body)


def test_admin_creates_a_cluster_with_full_availability(organization, member):
    response = new_cluster(member(Role.ADMIN), organization)
    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in ("name", "organization", "cpu_limit", "ram_limit", "gpu_limit")} == {
        "name": "gpu-pool", "organization": organization.pk, "cpu_limit": "16.000", "ram_limit": "64.500",
        "gpu_limit": 4,
    }
    assert (body["cpu_available"], body["ram_available"], body["gpu_available"]) == ("16.000", "64.500", 4)


@pytest.mark.parametrize("role,expected", [(Role.DEVELOPER, 403), (Role.VIEWER, 403)])
def test_only_admins_create_clusters(organization, member, role, expected):
    assert new_cluster(member(role), organization).status_code == expected
    assert not Cluster.objects.exists()


def test_creating_in_someone_elses_organization_reads_as_nonexistent(organization, auth_client):
    response = new_cluster(auth_client, organization)
    assert response.status_code == 400
    assert response.json() == {"organization": [f'Invalid pk "{organization.pk}" - object does not exist.']}


@pytest.mark.parametrize(
    "field,value",
    [("cpu_limit", "-1"), ("cpu_limit", "NaN"), ("cpu_limit", "Infinity"), ("cpu_limit", "1.0001"),
     ("ram_limit", "1e30"), ("ram_limit", "abc"), ("gpu_limit", -1), ("gpu_limit", 2**31), ("gpu_limit", 1.5),
     ("name", ""), ("cpu_limit", None)],
)
def test_bad_capacity_is_400_naming_the_field(organization, member, field, value):
    response = new_cluster(member(Role.ADMIN), organization, **{field: value})
    assert response.status_code == 400
    assert field in response.json()
    assert not Cluster.objects.exists()


def test_all_zero_capacity_is_400(organization, member):
    response = new_cluster(member(Role.ADMIN), organization, cpu_limit="0", ram_limit="0", gpu_limit=0)
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["A cluster needs a capacity above zero for at least one resource."]}


def test_names_are_unique_within_an_organization_only(organization, member):
    admin = member(Role.ADMIN)
    assert new_cluster(admin, organization).status_code == 201
    duplicate = new_cluster(admin, organization)
    assert duplicate.status_code == 400
    assert duplicate.json() == {"name": ["A cluster with this name already exists in this organization."]}
    other = OrganizationFactory()
    MembershipFactory(organization=other, user=admin.user, role=Role.ADMIN)
    assert new_cluster(admin, other).status_code == 201


def test_list_is_scoped_and_filterable_by_organization(member, organization):
    admin = member(Role.ADMIN)
    mine = ClusterFactory(organization=organization)
    second_org = OrganizationFactory()
    MembershipFactory(organization=second_org, user=admin.user, role=Role.VIEWER)
    also_mine = ClusterFactory(organization=second_org)
    ClusterFactory()  # someone else's
    assert [c["id"] for c in admin.get(CLUSTERS).json()["results"]] == [mine.pk, also_mine.pk]
    filtered = admin.get(CLUSTERS, {"organization": second_org.pk}).json()
    assert [c["id"] for c in filtered["results"]] == [also_mine.pk]
    assert admin.get(CLUSTERS, {"organization": "x"}).status_code == 400


def test_detail_shows_counts_and_exact_availability(member, organization):
    cluster = ClusterFactory(organization=organization, cpu_limit="1.000", ram_limit="1.000", gpu_limit=1)
    Cluster.objects.filter(pk=cluster.pk).update(cpu_allocated="0.333", ram_allocated="0.001")
    body = member(Role.VIEWER).get(f"{CLUSTERS}{cluster.pk}").json()
    assert (body["cpu_available"], body["ram_available"], body["gpu_available"]) == ("0.667", "0.999", 1)
    assert (body["pending_count"], body["running_count"]) == (0, 0)


def test_availability_is_read_only(member, organization):
    cluster = ClusterFactory(organization=organization)
    response = member(Role.ADMIN).patch(f"{CLUSTERS}{cluster.pk}/", {"cpu_available": "1000"})
    assert response.status_code == 200
    assert response.json()["cpu_available"] == "8.000"


@pytest.mark.parametrize("method,role,expected", [
    ("patch", Role.ADMIN, 200), ("patch", Role.DEVELOPER, 403), ("patch", Role.VIEWER, 403),
    ("delete", Role.ADMIN, 204), ("delete", Role.DEVELOPER, 403), ("delete", Role.VIEWER, 403),
    ("get", Role.VIEWER, 200),
])
@pytest.mark.parametrize("slash", ["", "/"])
def test_role_matrix(member, organization, method, role, expected, slash):
    cluster = ClusterFactory(organization=organization)
    path = f"{CLUSTERS}{cluster.pk}{slash}"
    response = getattr(member(role), method)(path, {"name": "renamed"} if method == "patch" else None)
    assert response.status_code == expected
    assert Cluster.objects.filter(pk=cluster.pk).exists() == (expected != 204)


def test_other_tenants_clusters_are_404_everywhere(organization):
    cluster = ClusterFactory(organization=organization)
    outsider = client_for(UserFactory())
    for method in ("get", "patch", "delete"):
        response = getattr(outsider, method)(f"{CLUSTERS}{cluster.pk}/")
        assert response.status_code == 404
        assert cluster.name not in response.content.decode()
    assert outsider.get(CLUSTERS).json()["count"] == 0
    theirs = outsider.get(CLUSTERS, {"organization": organization.pk})
    nobodys = outsider.get(CLUSTERS, {"organization": 999999})
    assert theirs.status_code == nobodys.status_code == 200
    assert theirs.json() == nobodys.json() == {"count": 0, "next": None, "previous": None, "results": []}
    assert Cluster.objects.filter(pk=cluster.pk, name=cluster.name).exists()


def test_moving_a_cluster_to_another_organization_is_ignored(member, organization):
    cluster = ClusterFactory(organization=organization)
    response = member(Role.ADMIN).patch(f"{CLUSTERS}{cluster.pk}/", {"organization": OrganizationFactory().pk})
    assert response.status_code == 200
    assert response.json()["organization"] == organization.pk


@pytest.mark.parametrize("method,path", [("get", CLUSTERS), ("post", CLUSTERS), ("get", f"{CLUSTERS}1/"),
                                         ("get", "/api/v1/deployments/"), ("post", "/api/v1/deployments/"),
                                         ("get", "/api/v1/deployments/1/events/")])
def test_anonymous_callers_get_401_not_an_empty_list(api_client, method, path):
    response = getattr(api_client, method)(path)
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize("clusters", [0, 49, 50, 51, 101])
def test_a_list_counts_and_links_its_pages_across_the_page_boundary(organization, member, clusters):
    # The first page is read without a count when it holds the whole list; the answer must not show it.
    ClusterFactory.create_batch(clusters, organization=organization)
    viewer = member(Role.VIEWER)
    seen, page, body = [], 1, viewer.get(CLUSTERS).json()
    while True:
        assert body["count"] == clusters and (body["previous"] is None) == (page == 1)
        seen += [c["id"] for c in body["results"]]
        if body["next"] is None:
            break
        page += 1
        assert body["next"].endswith(f"?page={page}")
        body = viewer.get(CLUSTERS, {"page": page}).json()
    assert seen == sorted(Cluster.objects.values_list("pk", flat=True))
    assert page == max(1, -(-clusters // 50))
