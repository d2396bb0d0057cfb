"""Projects over HTTP: the default one, creation, edits, deletion, members, roles and tenant isolation."""
import pytest

from deployments.models import Deployment
from organizations.models import Project, ProjectMembership, Role
from tests.conftest import client_for
from tests.deployments.api import action, submit
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def projects_url(organization) -> str:
    return f"/api/v1/organizations/{organization.pk}/projects/"


def project_url(project, suffix: str = "") -> str:
    return f"/api/v1/projects/{project.pk}/{suffix}"


@pytest.fixture
def research(organization):
    return ProjectFactory(organization=organization, name="research", max_priority=10)


def test_creating_an_organization_creates_its_default_project(auth_client, user):
    organization = auth_client.post("/api/v1/organizations/", {"name": "ml"}).json()
    response = auth_client.get(f"/api/v1/organizations/{organization['id']}/projects/")
    assert response.status_code == 200
    [default] = response.json()["results"]
    assert {k: default[k] for k in ("organization", "name", "max_priority", "members_count")} == {
        "organization": organization["id"], "name": "default", "max_priority": None, "members_count": 1}
    assert set(default) == {"id", "organization", "name", "max_priority", "members_count", "created_at"}


def test_admin_creates_a_project_and_members_read_it(organization, admin, dev, member):
    response = admin.post(projects_url(organization), {"name": "research", "max_priority": 10}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in ("organization", "name", "max_priority", "members_count")} == {
        "organization": organization.pk, "name": "research", "max_priority": 10, "members_count": 0}
    for client in (dev, member(Role.VIEWER), admin):
        assert client.get(project_url(Project.objects.get(name="research"))).json() == body
        listed = client.get(projects_url(organization)).json()
        assert [p["name"] for p in listed["results"]] == ["default", "research"]
        assert listed["count"] == 2


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.VIEWER])
def test_only_admins_create_change_and_delete_projects(organization, member, research, role):
    client = member(role)
    assert client.post(projects_url(organization), {"name": "x"}, format="json").status_code == 403
    assert client.patch(project_url(research), {"name": "y"}, format="json").status_code == 403
    assert client.delete(project_url(research)).status_code == 403
    assert client.post(project_url(research, "members/"), {"user": client.user.pk}, format="json").status_code == 403
    assert client.delete(project_url(research, f"members/{client.user.pk}/")).status_code == 403
    assert list(Project.objects.filter(organization=organization).values_list("name", flat=True)) == [
        "default", "research"]


def test_outsiders_get_404_everywhere(organization, research, auth_client):
    assert auth_client.get(projects_url(organization)).status_code == 404
    assert auth_client.post(projects_url(organization), {"name": "x"}, format="json").status_code == 404
    for method, suffix in (("get", ""), ("patch", ""), ("delete", ""), ("get", "members/"), ("post", "members/")):
        assert getattr(auth_client, method)(project_url(research, suffix), {}, format="json").status_code == 404
    assert auth_client.delete(project_url(research, "members/1/")).status_code == 404


def test_anonymous_is_401(organization, research, api_client):
    assert api_client.get(projects_url(organization)).status_code == 401
    assert api_client.get(project_url(research)).status_code == 401


@pytest.mark.parametrize("body,field", [
    ({"name": "default"}, "name"), ({"name": "research"}, "name"), ({"name": ""}, "name"), ({}, "name"),
    ({"name": "x" * 101}, "name"), ({"name": 5}, "name"), ({"name": "x", "max_priority": 2**31}, "max_priority"),
    ({"name": "x", "max_priority": "high"}, "max_priority"), ({"name": "x", "max_priority": 1.5}, "max_priority"),
])
def test_bad_projects_are_400_naming_the_field(organization, admin, research, body, field):
    response = admin.post(projects_url(organization), body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Project.objects.filter(organization=organization).count() == 2


def test_the_same_name_is_fine_in_another_organization(organization, admin, research):
    other = OrganizationFactory()
    ProjectFactory(organization=other, name="x")
    assert admin.post(projects_url(organization), {"name": "x"}, format="json").status_code == 201


def test_admin_renames_and_sets_the_ceiling(admin, research):
    response = admin.patch(project_url(research), {"name": "science", "max_priority": None}, format="json")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["max_priority"]) == ("science", None)
    assert admin.patch(project_url(research), {"max_priority": -5}, format="json").json()["max_priority"] == -5


def test_renaming_onto_a_taken_name_is_400(organization, admin, research):
    ProjectFactory(organization=organization, name="taken")
    response = admin.patch(project_url(research), {"name": "taken"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()


def test_the_default_project_is_neither_renamed_nor_deleted(organization, admin):
    default = organization.default_project
    assert admin.patch(project_url(default), {"name": "main"}, format="json").status_code == 409
    assert admin.delete(project_url(default)).status_code == 409
    # Its ceiling is an admin's to set, and naming it as it is changes nothing.
    assert admin.patch(project_url(default), {"name": "default", "max_priority": 3}, format="json").status_code == 200
    assert Project.objects.get(pk=default.pk).max_priority == 3


@pytest.mark.django_db(transaction=True)
def test_deleting_a_project_with_active_work_is_409_and_then_keeps_its_history(organization, admin, cluster, research):
    running = submit(admin, cluster, name="r", project=research.pk)
    pending = submit(admin, cluster, name="p", cpu="4", project=research.pk)
    response = admin.delete(project_url(research))
    assert response.status_code == 409
    assert response.json() == {"detail": "The project has 2 pending or running deployments; cancel them first."}
    assert action(admin, pending, "cancel").status_code == 200
    assert admin.delete(project_url(research)).status_code == 409
    assert action(admin, running, "complete").status_code == 200
    assert admin.delete(project_url(research)).status_code == 204
    assert not Project.objects.filter(pk=research.pk).exists()
    # Finished work stays, in the organization's default project.
    assert set(Deployment.objects.values_list("project", flat=True)) == {organization.default_project.pk}


def test_members_of_a_project(organization, admin, dev, member, research):
    viewer = member(Role.VIEWER)
    url = project_url(research, "members/")
    assert admin.get(url).json()["results"] == []
    response = admin.post(url, {"user": dev.user.pk}, format="json")
    assert response.status_code == 201
    assert response.json() == {"user": dev.user.pk, "username": dev.user.username}
    assert admin.post(url, {"user": dev.user.pk}, format="json").status_code == 200  # harmless twice
    assert admin.post(url, {"user": viewer.user.pk}, format="json").status_code == 201
    listed = viewer.get(url).json()
    assert (listed["count"], [m["user"] for m in listed["results"]]) == (2, sorted([dev.user.pk, viewer.user.pk]))
    assert dev.get(project_url(research)).json()["members_count"] == 2
    assert admin.delete(project_url(research, f"members/{dev.user.pk}/")).status_code == 204
    assert admin.delete(project_url(research, f"members/{dev.user.pk}/")).status_code == 404
    assert list(ProjectMembership.objects.values_list("user", flat=True)) == [viewer.user.pk]


def test_only_members_of_the_organization_join_a_project(admin, research):
    stranger = MembershipFactory(organization=OrganizationFactory()).user
    for user_id in (stranger.pk, UserFactory().pk, 10**6, 2**70):
        response = admin.post(project_url(research, "members/"), {"user": user_id}, format="json")
        assert response.status_code == 400
        assert response.json() == {"user": ["Not a member of this project's organization."]}
    for body in ({}, {"user": "x"}, {"user": 0}, {"user": 1, "role": "admin"}):
        assert admin.post(project_url(research, "members/"), body, format="json").status_code == 400
    assert not ProjectMembership.objects.exists()


def test_the_default_project_holds_every_member(organization, admin, dev, member):
    default = organization.default_project
    viewer = member(Role.VIEWER)
    listed = dev.get(project_url(default, "members/")).json()
    assert sorted(m["user"] for m in listed["results"]) == sorted(c.user.pk for c in (admin, dev, viewer))
    assert dev.get(project_url(default)).json()["members_count"] == 3
    # Adding one of them changes nothing; they leave it only with the organization.
    assert admin.post(project_url(default, "members/"), {"user": dev.user.pk}, format="json").status_code == 200
    assert admin.delete(project_url(default, f"members/{dev.user.pk}/")).status_code == 409
    assert not ProjectMembership.objects.exists()


def test_leaving_the_organization_leaves_its_projects(organization, admin, dev, research):
    admin.post(project_url(research, "members/"), {"user": dev.user.pk}, format="json")
    other = ProjectFactory(organization=OrganizationFactory())
    ProjectMembership.objects.create(project=other, user=dev.user)
    assert dev.post(f"/api/v1/organizations/{organization.pk}/leave/").status_code == 204
    assert list(ProjectMembership.objects.values_list("project", flat=True)) == [other.pk]


def test_project_lists_are_paginated_and_strict(organization, admin, research):
    assert admin.get(projects_url(organization) + "?page=2").status_code == 404
    assert admin.get(projects_url(organization) + "?colour=red").status_code == 400
    assert admin.get(project_url(research) + "?x=1").status_code == 400
    assert admin.get(project_url(research, "members/") + "?page=1").status_code == 200


def test_a_project_appears_in_the_api_schema(schema):
    for path in ("/api/v1/organizations/{id}/projects/", "/api/v1/projects/{id}/", "/api/v1/projects/{id}/members/",
                 "/api/v1/projects/{id}/members/{user_id}/"):
        assert any(p.rstrip("/") == path.rstrip("/") for p in schema["paths"]), path


def test_a_client_for_a_removed_member_is_404(organization, admin, dev, research):
    client = client_for(dev.user)
    admin.delete(f"/api/v1/organizations/{organization.pk}/members/{dev.user.pk}/")
    assert client.get(project_url(research)).status_code == 404
