# Deployments gain their project: nullable first; then every organization that exists gets the default project
# that creating one now gives it, and every deployment goes into its organization's (where its scheduling stays
# exactly as it was); NOT NULL in 0011, after the backfill.
import django.db.models.deletion
from django.db import migrations, models


def put_in_default_projects(apps, schema_editor):
    Organization = apps.get_model("organizations", "Organization")
    Project = apps.get_model("organizations", "Project")
    Deployment = apps.get_model("deployments", "Deployment")
    Project.objects.bulk_create(
        Project(organization_id=pk, name="default", is_default=True)
        for pk in Organization.objects.exclude(projects__is_default=True).values_list("pk", flat=True)
    )
    for organization_id, project_id in Project.objects.filter(is_default=True).values_list("organization_id", "pk"):
        Deployment.objects.filter(cluster__organization_id=organization_id).update(project_id=project_id)


class Migration(migrations.Migration):

    dependencies = [
        ('deployments', '0009_services'),
        ('organizations', '0002_projects'),
    ]

    operations = [
        migrations.AddField(
            model_name='deployment',
            name='project',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='deployments', to='organizations.project'),
        ),
        migrations.RunPython(put_in_default_projects, migrations.RunPython.noop),
    ]
