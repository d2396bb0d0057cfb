# Deployments gain their project: nullable first, every existing one then put in its organization's default
# project (where its scheduling stays exactly as it was), and NOT NULL in 0011, after the backfill.
import django.db.models.deletion
from django.db import migrations, models


def put_in_default_projects(apps, schema_editor):
    Deployment = apps.get_model("deployments", "Deployment")
    Project = apps.get_model("organizations", "Project")
    for organization_id, project_id in Project.objects.filter(is_default=True).values_list("organization_id", "pk"):
        Deployment.objects.filter(cluster__organization_id=organization_id).update(project_id=project_id)


class Migration(migrations.Migration):

    dependencies = [
        ('deployments', '0009_services'),
        ('organizations', '0003_default_projects'),
    ]

    operations = [
        migrations.AddField(
            model_name='deployment',
            name='project',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='deployments', to='organizations.project'),
        ),
        migrations.RunPython(put_in_default_projects, migrations.RunPython.noop),
    ]
