"""Deployments and their project: the default one, who may submit where, the priority ceiling on create, edit
and dry run, the filter, and a project fixed once the deployment has been scheduled."""
import pytest

from deployments.models import Deployment
from organizations.models import ProjectMembership, Role
from tests.deployments.api import DEPLOYMENTS, get, submit
from tests.factories import ClusterFactory, MembershipFactory, OrganizationFactory, ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)

CEILING = {"priority": ["Project 'research' allows priority at most 10."]}


@pytest.fixture
def research(organization):
    return ProjectFactory(organization=organization, name="research", max_priority=10)


def body(cluster, **fields) -> dict:
    return {"name": "job", "cluster": cluster.pk, "docker_image": "img:1", "cpu_required": "1", **fields}


def test_a_deployment_goes_to_the_default_project_unless_it_names_another(dev, admin, cluster, research):
    default = get(dev, submit(dev, cluster))
    assert default["project"] == cluster.organization.default_project.pk
    assert get(admin, submit(admin, cluster, project=research.pk))["project"] == research.pk


def test_members_submit_to_their_projects_and_admins_to_any(dev, admin, member, cluster, research):
    response = dev.post(DEPLOYMENTS, body(cluster, project=research.pk), format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "You are not a member of project 'research'."}
    assert dev.post(f"{DEPLOYMENTS}dry-run/", body(cluster, project=research.pk), format="json").status_code == 403
    ProjectMembership.objects.create(project=research, user=dev.user)
    assert get(dev, submit(dev, cluster, project=research.pk))["project"] == research.pk
    assert submit(admin, cluster, project=research.pk)
    viewer = member(Role.VIEWER)
    ProjectMembership.objects.create(project=research, user=viewer.user)
    assert viewer.post(DEPLOYMENTS, body(cluster, project=research.pk), format="json").status_code == 403
    assert Deployment.objects.filter(project=research).count() == 2


def test_another_organizations_project_or_none_at_all_is_400(admin, cluster):
    mine_elsewhere = OrganizationFactory()
    MembershipFactory(organization=mine_elsewhere, user=admin.user, role=Role.ADMIN)
    stranger = ProjectFactory(organization=OrganizationFactory())
    cases = {
        mine_elsewhere.default_project.pk: ["This project belongs to another organization than the cluster."],
        stranger.pk: [f'Invalid pk "{stranger.pk}" - object does not exist.'],
        10**9: ['Invalid pk "1000000000" - object does not exist.'],
    }
    for project, errors in cases.items():
        for path in (DEPLOYMENTS, f"{DEPLOYMENTS}dry-run/"):
            response = admin.post(path, body(cluster, project=project), format="json")
            assert response.status_code == 400
            assert response.json() == {"project": errors}
    for bad in ("x", None, 1.5):
        assert admin.post(DEPLOYMENTS, body(cluster, project=bad), format="json").status_code == 400
    assert not Deployment.objects.exists()


def test_priority_above_the_ceiling_is_400_on_create_and_dry_run(admin, cluster, research):
    for path in (DEPLOYMENTS, f"{DEPLOYMENTS}dry-run/"):
        response = admin.post(path, body(cluster, project=research.pk, priority=11), format="json")
        assert response.status_code == 400
        assert response.json() == CEILING
    assert admin.post(f"{DEPLOYMENTS}dry-run/", body(cluster, project=research.pk, priority=10),
                      format="json").status_code == 200
    assert submit(admin, cluster, project=research.pk, priority=10)
    assert Deployment.objects.count() == 1


def test_a_negative_ceiling_refuses_the_default_priority(admin, cluster, research):
    research.max_priority = -1
    research.save()
    response = admin.post(DEPLOYMENTS, body(cluster, project=research.pk), format="json")
    assert response.json() == {"priority": ["Project 'research' allows priority at most -1."]}


def test_the_ceiling_holds_on_edit_of_priority_or_project(admin, cluster, research):
    submit(admin, cluster, cpu="4", priority=100)  # fills the cluster
    waiting = submit(admin, cluster, cpu="4")
    queued = submit(admin, cluster, cpu="4", priority=50)  # in the default project, which has no ceiling
    url = f"{DEPLOYMENTS}{waiting}/"
    assert admin.patch(url, {"project": research.pk}, format="json").status_code == 200
    response = admin.patch(url, {"priority": 11}, format="json")
    assert (response.status_code, response.json()) == (400, CEILING)
    assert admin.patch(url, {"priority": 10}, format="json").status_code == 200
    response = admin.patch(f"{DEPLOYMENTS}{queued}/", {"project": research.pk}, format="json")
    assert (response.status_code, response.json()) == (400, CEILING)
    assert get(admin, queued)["project"] == cluster.organization.default_project.pk


def test_moving_into_a_project_needs_its_membership(dev, cluster, research):
    submit(dev, cluster, cpu="4")  # fills the cluster
    waiting = submit(dev, cluster, cpu="4")
    response = dev.patch(f"{DEPLOYMENTS}{waiting}/", {"project": research.pk}, format="json")
    assert response.status_code == 403
    ProjectMembership.objects.create(project=research, user=dev.user)
    assert dev.patch(f"{DEPLOYMENTS}{waiting}/", {"project": research.pk}, format="json").status_code == 200


def test_the_project_is_fixed_once_scheduled(admin, cluster, research):
    running = submit(admin, cluster)
    assert get(admin, running)["status"] == "running"
    response = admin.patch(f"{DEPLOYMENTS}{running}/", {"project": research.pk}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": "project cannot change once a deployment has been scheduled."}
    # Naming the project it is in changes nothing.
    same = {"project": cluster.organization.default_project.pk}
    assert admin.patch(f"{DEPLOYMENTS}{running}/", same, format="json").status_code == 200


def test_a_project_of_another_organization_cannot_be_moved_into(admin, cluster):
    elsewhere = OrganizationFactory()
    MembershipFactory(organization=elsewhere, user=admin.user, role=Role.ADMIN)
    submit(admin, cluster, cpu="4")  # fills the cluster
    waiting = submit(admin, cluster, cpu="4")
    response = admin.patch(f"{DEPLOYMENTS}{waiting}/", {"project": elsewhere.default_project.pk}, format="json")
    assert response.status_code == 400
    assert "project" in response.json()


def test_the_list_filters_by_project(admin, cluster, research):
    mine = submit(admin, cluster, project=research.pk)
    submit(admin, cluster)
    other_cluster = ClusterFactory(organization=cluster.organization)
    also = submit(admin, other_cluster, project=research.pk)
    listed = admin.get(f"{DEPLOYMENTS}?project={research.pk}").json()
    assert sorted(d["id"] for d in listed["results"]) == [mine, also]
    assert admin.get(f"{DEPLOYMENTS}?project=x").status_code == 400
    assert admin.get(f"{DEPLOYMENTS}?project=999999").json()["count"] == 0
