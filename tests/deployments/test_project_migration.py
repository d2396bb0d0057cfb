"""The project migrations, on a database with organizations and deployments in it: every organization gets its
default project, every deployment lands in its organization's, and the column is then required."""
import pytest
from django.db import IntegrityError, connection, transaction

from tests.deployments.test_lifecycle_migration import migrate

BEFORE = [("organizations", "0001_initial"), ("clusters", "0002_reserve_after_seconds"),
          ("deployments", "0009_services")]
AFTER = [("deployments", "0011_project_required")]

pytestmark = pytest.mark.django_db(transaction=True)


def test_existing_organizations_get_their_default_project_and_deployments_land_in_it():
    apps = migrate(BEFORE)
    Organization = apps.get_model("organizations", "Organization")
    Cluster = apps.get_model("clusters", "Cluster")
    Deployment = apps.get_model("deployments", "Deployment")
    organizations = [Organization.objects.create(name=f"o{n}", invite_code=f"code{n}") for n in range(3)]
    expected = {}
    for organization in organizations[:2]:  # the third has no cluster and no deployment
        for c in range(2):
            cluster = Cluster.objects.create(name=f"c{c}", organization=organization, cpu_limit=4, ram_limit=4,
                                             gpu_limit=0)
            for status in ("pending", "running", "completed"):
                pk = Deployment.objects.create(
                    name=status, cluster=cluster, docker_image="i", status=status,
                    started_at="2026-01-01T00:00:00Z" if status != "pending" else None,
                    end_reason="user" if status == "completed" else None).pk
                expected[pk] = organization.pk
    try:
        apps = migrate(AFTER)
        Project = apps.get_model("organizations", "Project")
        Deployment = apps.get_model("deployments", "Deployment")
        defaults = dict(Project.objects.values_list("organization_id", "pk"))
        assert Project.objects.count() == 3
        assert set(Project.objects.values_list("name", "is_default")) == {("default", True)}
        assert set(defaults) == {o.pk for o in organizations}
        assert dict(Deployment.objects.values_list("pk", "project_id")) == {
            pk: defaults[organization] for pk, organization in expected.items()}
        # A second default project, or a deployment without one, is refused by the database from now on.
        with pytest.raises(IntegrityError), transaction.atomic():
            Project.objects.create(organization_id=organizations[0].pk, name="other", is_default=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT is_nullable FROM information_schema.columns "
                           "WHERE table_name = 'deployments_deployment' AND column_name = 'project_id'")
            assert cursor.fetchone() == ("NO",)
    finally:
        migrate()
