"""An organization is never left without an admin, even when admins act at the same moment."""
import threading

import pytest
from django.db import connection

from deployments.models import Deployment
from organizations.models import Membership, Project, Role
from tests.conftest import client_for
from tests.factories import ClusterFactory, MembershipFactory, OrganizationFactory, ProjectFactory


def run_together(calls):
    """Run the calls in threads released at the same instant; return their results in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        barrier.wait()
        try:
            results[index] = call()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(5))
def test_two_admins_demoting_each_other_at_once_leave_one_admin(attempt):
    organization = OrganizationFactory()
    first = MembershipFactory(organization=organization, role=Role.ADMIN).user
    second = MembershipFactory(organization=organization, role=Role.ADMIN).user
    path = f"/api/v1/organizations/{organization.pk}/members/{{}}/"
    responses = run_together([
        lambda: client_for(first).patch(path.format(second.pk), {"role": "developer"}, format="json"),
        lambda: client_for(second).patch(path.format(first.pk), {"role": "developer"}, format="json"),
    ])
    assert sorted(r.status_code for r in responses) in ([200, 403], [200, 409])
    assert Membership.objects.filter(organization=organization, role=Role.ADMIN).count() == 1


@pytest.mark.django_db(transaction=True)
def test_admins_all_leaving_at_once_leave_exactly_one_admin():
    organization = OrganizationFactory()
    admins = [MembershipFactory(organization=organization, role=Role.ADMIN).user for _ in range(4)]
    responses = run_together([
        (lambda user=user: client_for(user).post(f"/api/v1/organizations/{organization.pk}/leave/"))
        for user in admins
    ])
    assert sorted(r.status_code for r in responses) == [204, 204, 204, 409]
    assert Membership.objects.filter(organization=organization, role=Role.ADMIN).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(5))
def test_deleting_a_project_while_work_is_submitted_to_it_is_one_or_the_other(attempt):
    organization = OrganizationFactory()
    admin = MembershipFactory(organization=organization, role=Role.ADMIN).user
    cluster = ClusterFactory(organization=organization, cpu_limit="8", ram_limit="32", gpu_limit=0)
    project = ProjectFactory(organization=organization)
    body = {"name": "job", "cluster": cluster.pk, "project": project.pk, "docker_image": "img", "cpu_required": "1"}
    submissions = [lambda: client_for(admin).post("/api/v1/deployments/", body, format="json")] * 4
    deletion, *submitted = run_together([lambda: client_for(admin).delete(f"/api/v1/projects/{project.pk}/"),
                                         *submissions])
    created = [r for r in submitted if r.status_code == 201]
    assert {r.status_code for r in submitted} <= {201, 400}
    # Either the deletion went first and every submission found the project gone, or it saw what was submitted.
    assert (deletion.status_code, bool(created)) in ((204, False), (409, True))
    assert Deployment.objects.count() == len(created)
    assert Project.objects.filter(pk=project.pk).exists() == (deletion.status_code == 409)
