# NOT NULL in a migration of its own: on PostgreSQL a table whose rows the backfill of 0010 just updated cannot
# be altered in the same transaction.
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('deployments', '0010_project'),
    ]

    operations = [
        migrations.AlterField(
            model_name='deployment',
            name='project',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='deployments', to='organizations.project'),
        ),
    ]
