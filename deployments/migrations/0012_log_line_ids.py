"""Stable line ids for a deployment's output: what was dropped from the front, so followers can resume."""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("deployments", "0011_project_required")]

    operations = [
        migrations.AddField(model_name="deploymentlog", name="dropped_lines",
                            field=models.PositiveBigIntegerField(default=0)),
        migrations.AddField(model_name="deploymentlog", name="dropped_chars",
                            field=models.PositiveBigIntegerField(default=0)),
    ]
