"""An organization is never left without an admin, even when admins act at the same moment."""
import threading

import pytest
from django.db import connection

from organizations.models import Membership, Role
from tests.conftest import client_for
from tests.factories import MembershipFactory, OrganizationFactory


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
