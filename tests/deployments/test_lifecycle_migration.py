"""The lifecycle migrations, on a database with deployments in it: every deployment finished before them gets
the end reason its story tells, runs keep their numbers, and the constraints then hold."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE, AFTER = [("deployments", "0005_pending_since_index")], [("deployments", "0007_lifecycle_constraints")]

pytestmark = pytest.mark.django_db(transaction=True)


def migrate(targets=None):
    """Migrates the test database to `targets` (None: the latest) and returns the models as they are there."""
    executor = MigrationExecutor(connection)
    targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def test_finished_deployments_get_the_end_reason_their_story_tells():
    apps = migrate(BEFORE)
    Organization = apps.get_model("organizations", "Organization")
    Cluster = apps.get_model("clusters", "Cluster")
    Deployment = apps.get_model("deployments", "Deployment")
    cluster = Cluster.objects.create(name="c", organization=Organization.objects.create(name="o", invite_code="x"),
                                     cpu_limit=4, ram_limit=4, gpu_limit=0)
    stories = {
        "completed": ("completed", "Completed: its container exited with code 0."),
        "failed-exit": ("failed", "Failed: its container exited with code 3."),
        "start": ("failed", "Failed to start: no such image"),
        "vanished": ("failed", "Failed: its container abc vanished from the agent's host."),
        "dependency": ("cancelled", "Cancelled: it depends on #1 'a', which failed."),
        "user": ("cancelled", "Cancelled by ada."),
        "waiting": ("pending", ""),
    }
    ids = {name: Deployment.objects.create(name=name, cluster=cluster, docker_image="i", status=status,
                                           status_message=message, attempt=2).pk
           for name, (status, message) in stories.items()}
    try:
        apps = migrate(AFTER)
        Deployment = apps.get_model("deployments", "Deployment")
        reasons = dict(Deployment.objects.values_list("name", "end_reason"))
        assert reasons == {"completed": "exited", "failed-exit": "exited", "start": "start_error",
                           "vanished": "vanished", "dependency": "dependency", "user": "user", "waiting": None}
        assert set(Deployment.objects.filter(pk__in=ids.values()).values_list("run", flat=True)) == {2}
    finally:
        migrate()
