"""The Django admin as operators use it: utilization, filters, search, and the deployment actions."""
import pytest
from django.contrib.admin import site
from django.test import Client

from accounts.models import User
from clusters.models import Cluster, ClusterQuota
from deployments import lifecycle
from deployments.admin import DeploymentAdmin
from deployments.models import Deployment, Status
from organizations.models import Project, ProjectMembership, Role
from tests.factories import ClusterFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser(username="op", email="op@example.com", password="x"))
    return client


@pytest.fixture
def cluster():
    return ClusterFactory(cpu_limit="8", ram_limit="32", gpu_limit=2)


def deploy(cluster, **resources) -> Deployment:
    return lifecycle.create_deployment(cluster=cluster, created_by=UserFactory(), name="job", docker_image="img",
                                      **resources)


def test_cluster_list_shows_utilization_per_resource(operator, cluster):
    deploy(cluster, cpu_required=2, ram_required=8, gpu_required=1)
    page = operator.get("/admin/clusters/cluster/").content.decode()
    assert "2.000/8.000 (25%)" in page and "8.000/32.000 (25%)" in page and "1/2 (50%)" in page


def test_deployment_list_filters_by_status_cluster_organization_and_priority(operator, cluster):
    running = deploy(cluster, cpu_required=8)
    waiting = deploy(cluster, cpu_required=8)
    for query in ("status__exact=pending", f"cluster__id__exact={cluster.pk}",
                  f"cluster__organization__id__exact={cluster.organization_id}", "priority=0"):
        response = operator.get(f"/admin/deployments/deployment/?{query}")
        assert response.status_code == 200, query
    pending_page = operator.get("/admin/deployments/deployment/?status__exact=pending").content.decode()
    assert f'href="/admin/deployments/deployment/{waiting.pk}/change/' in pending_page
    assert f'href="/admin/deployments/deployment/{running.pk}/change/' not in pending_page


def test_cancel_action_frees_resources_and_starts_waiting_work(operator, cluster):
    running = deploy(cluster, cpu_required=8)
    waiting = deploy(cluster, cpu_required=8)
    response = operator.post("/admin/deployments/deployment/", {"action": "cancel", "_selected_action": [running.pk]})
    assert response.status_code == 302
    assert Deployment.objects.get(pk=running.pk).status == Status.CANCELLED
    assert Deployment.objects.get(pk=waiting.pk).status == Status.RUNNING
    assert Cluster.objects.get(pk=cluster.pk).cpu_allocated == 8


def test_reschedule_action_places_stranded_work(operator, cluster, monkeypatch):
    monkeypatch.setattr(lifecycle, "request_scheduling", lambda cluster_id: None)
    stranded = deploy(cluster, cpu_required=1)
    monkeypatch.undo()
    operator.post("/admin/deployments/deployment/", {"action": "reschedule", "_selected_action": [stranded.pk]})
    assert Deployment.objects.get(pk=stranded.pk).status == Status.RUNNING


def test_organizations_are_searchable_by_invite_code_with_members_inline(operator):
    membership = MembershipFactory(role=Role.ADMIN)
    organization = membership.organization
    listing = operator.get(f"/admin/organizations/organization/?q={organization.invite_code}").content.decode()
    assert f"/admin/organizations/organization/{organization.pk}/change/" in listing
    detail = operator.get(f"/admin/organizations/organization/{organization.pk}/change/").content.decode()
    assert membership.user.username in detail and 'name="memberships-0-role"' in detail


def test_user_admin_searches_by_email(operator):
    user = UserFactory(email="findme@example.com")
    assert user.username in operator.get("/admin/accounts/user/?q=findme").content.decode()


def test_saving_a_change_form_does_not_put_back_a_stale_status(cluster, rf):
    deployment = deploy(cluster, cpu_required=1)
    model_admin = DeploymentAdmin(Deployment, site)
    request = rf.post("/")
    request.user = User.objects.create_superuser(username="op", email="op@example.com", password="x")
    opened = Deployment.objects.get(pk=deployment.pk)  # the operator opens the form: running
    Deployment.objects.filter(pk=deployment.pk).update(status=Status.COMPLETED)  # the world moves on
    form = model_admin.get_form(request, opened, change=True)({"name": "renamed", "docker_image": "img"},
                                                            instance=opened)
    assert form.is_valid(), form.errors
    model_admin.save_model(request, form.save(commit=False), form, change=True)
    saved = Deployment.objects.get(pk=deployment.pk)
    assert (saved.name, saved.status) == ("renamed", Status.COMPLETED)


def test_pending_deployments_show_their_reason_and_queue_position(operator, cluster):
    deploy(cluster, cpu_required=8)
    first = deploy(cluster, cpu_required=8, priority=-1)
    second = deploy(cluster, cpu_required=1, depends_on=[first])
    page = operator.get("/admin/deployments/deployment/?status__exact=pending").content.decode()
    assert '<td class="field-waiting_reason">dependencies</td><td class="field-queue_position">1</td>' in page
    assert '<td class="field-waiting_reason">resources</td><td class="field-queue_position">2</td>' in page
    detail = operator.get(f"/admin/deployments/deployment/{second.pk}/change/").content.decode()
    assert f"dependencies, position 1 in the queue: waiting for dependencies #{first.pk} (pending)." in detail


def test_agents_show_on_their_cluster_and_runtime_and_logs_on_the_deployment(operator, cluster):
    from agents.registration import register_agent
    from deployments.models import DeploymentLog

    register_agent(cluster_id=cluster.pk, name="gpu-host-7")
    running = deploy(cluster, cpu_required=1)
    DeploymentLog.objects.create(deployment=running, text="line one\nline two\n")
    page = operator.get(f"/admin/clusters/cluster/{cluster.pk}/change/").content.decode()
    assert "gpu-host-7" in page and "<p>new</p>" in page
    detail = operator.get(f"/admin/deployments/deployment/{running.pk}/change/").content.decode()
    assert "Attempt 1: starting" in detail and "<pre>line one\nline two</pre>" in detail


def test_projects_show_their_members_and_the_default_one_is_protected(operator, cluster):
    organization = cluster.organization
    member = MembershipFactory(organization=organization).user
    research = Project.objects.create(organization=organization, name="research", max_priority=10)
    ProjectMembership.objects.create(project=research, user=member)
    listing = operator.get("/admin/organizations/project/").content.decode()
    assert "research" in listing and "default" in listing
    page = operator.get(f"/admin/organizations/project/{research.pk}/change/").content.decode()
    assert member.username in page
    default = organization.default_project
    assert operator.get(f"/admin/organizations/project/{default.pk}/delete/").status_code == 403
    assert operator.get(f"/admin/organizations/organization/{organization.pk}/change/").status_code == 200


def test_an_organization_added_in_the_admin_gets_its_default_project(operator):
    response = operator.post("/admin/organizations/organization/add/", {
        "name": "from-admin", **{f"{prefix}-{key}": value for prefix in ("memberships", "projects")
                                 for key, value in (("TOTAL_FORMS", 0), ("INITIAL_FORMS", 0))}})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(Project.objects.filter(organization__name="from-admin").values_list("name", "is_default")) == [
        ("default", True)]


def test_clusters_show_quotas_with_usage_and_deployments_their_project(operator, cluster):
    project = cluster.organization.default_project
    ClusterQuota.objects.create(cluster=cluster, project=project, guaranteed_cpu=2, guaranteed_ram=4,
                                guaranteed_gpu=1, weight=5)
    deployment = deploy(cluster, cpu_required=1, ram_required=2, gpu_required=1)
    page = operator.get(f"/admin/clusters/cluster/{cluster.pk}/change/").content.decode()
    assert "2.000 CPU, 4.000 GB RAM, 1 GPU" in page and "1.000 CPU, 2.000 GB RAM, 1 GPU" in page
    listing = operator.get(f"/admin/deployments/deployment/?project__id__exact={project.pk}").content.decode()
    assert f'href="/admin/deployments/deployment/{deployment.pk}/change/' in listing
