# The lifecycle's constraints, in a migration of their own: on PostgreSQL a table whose rows the backfill of
# 0006 just updated cannot be altered in the same transaction.
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("deployments", "0006_lifecycle"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name='deployment',
            constraint=models.CheckConstraint(condition=models.Q(('restart_policy__in', ['never', 'on_failure', 'always'])), name='deployments_deployment_restart_policy_valid', violation_error_message='Unknown restart policy.'),
        ),
        migrations.AddConstraint(
            model_name='deployment',
            constraint=models.CheckConstraint(condition=models.Q(('max_restarts__isnull', True), ('max_restarts__lte', 10000), _connector='OR'), name='deployments_deployment_max_restarts_bounded', violation_error_message='max_restarts is at most 10000.'),
        ),
        migrations.AddConstraint(
            model_name='deployment',
            constraint=models.CheckConstraint(condition=models.Q(('time_limit_seconds__isnull', True), models.Q(('time_limit_seconds__gte', 1), ('time_limit_seconds__lte', 31536000)), _connector='OR'), name='deployments_deployment_time_limit_bounded', violation_error_message='time_limit_seconds is between 1 and 31536000.'),
        ),
        migrations.AddConstraint(
            model_name='deployment',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('end_reason__isnull', True), ('status__in', ('pending', 'running'))), models.Q(models.Q(('status__in', ('pending', 'running')), _negated=True), ('end_reason__in', ['exited', 'time_limit', 'restarts_exhausted', 'start_error', 'vanished', 'oom_killed', 'user', 'dependency'])), _connector='OR'), name='deployments_deployment_end_reason_iff_finished', violation_error_message='A finished deployment has an end reason, and only a finished one.'),
        ),
        migrations.AddConstraint(
            model_name='deploymentevent',
            constraint=models.CheckConstraint(condition=models.Q(('kind__in', ['queued', 'scheduled', 'started', 'restarted', 'stopped', 'preempted', 'requeued', 'dependencies_resolved', 'completed', 'failed', 'cancelled'])), name='deployments_deploymentevent_kind_valid', violation_error_message='Unknown event kind.'),
        ),
    ]
