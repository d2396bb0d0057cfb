# Every organization that exists already gets the default project that creating one now gives it, in a migration
# of its own: on PostgreSQL a table whose rows were just inserted cannot be altered in the same transaction.
from django.db import migrations


def create_default_projects(apps, schema_editor):
    Organization = apps.get_model("organizations", "Organization")
    Project = apps.get_model("organizations", "Project")
    Project.objects.bulk_create(
        Project(organization_id=pk, name="default", is_default=True)
        for pk in Organization.objects.exclude(projects__is_default=True).values_list("pk", flat=True)
    )


def delete_default_projects(apps, schema_editor):
    apps.get_model("organizations", "Project").objects.filter(is_default=True).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("organizations", "0002_projects"),
    ]

    operations = [
        migrations.RunPython(create_default_projects, delete_default_projects),
    ]
