"""Deployments (a container and the resources it asks for) and the history of their status."""
from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from clusters.models import RESOURCE_DECIMAL
from hypervisor_mlops.streams.hints import announce
from organizations.models import TenantQuerySet
from scheduling.planner import QUEUE_ORDER
from scheduling.resources import Resources


class DeploymentQuerySet(TenantQuerySet):
    organization_path = "cluster__organization__"

    def pending(self) -> "DeploymentQuerySet":
        return self.filter(status=Deployment.Status.PENDING)

    def running(self) -> "DeploymentQuerySet":
        return self.filter(status=Deployment.Status.RUNNING)

    def active(self) -> "DeploymentQuerySet":
        return self.filter(status__in=Deployment.ACTIVE_STATUSES)

    def in_queue_order(self) -> "DeploymentQuerySet":
        return self.order_by(*QUEUE_ORDER)

    def ready(self, ready: bool = True) -> "DeploymentQuerySet":
        """Those with a health check whose current container runs and passes it (`runtime.ready`), or the
        others with a check."""
        checked = self.filter(health_check__isnull=False)
        return checked.filter(passing_its_check()) if ready else checked.exclude(passing_its_check())


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class RestartPolicy(models.TextChoices):
    NEVER = "never", "Never"
    ON_FAILURE = "on_failure", "On failure"
    ALWAYS = "always", "Always"


class EndReason(models.TextChoices):
    EXITED = "exited", "Its container exited"
    TIME_LIMIT = "time_limit", "Time limit"
    RESTARTS_EXHAUSTED = "restarts_exhausted", "Restarts exhausted"
    START_ERROR = "start_error", "Could not start"
    VANISHED = "vanished", "Container vanished"
    OOM_KILLED = "oom_killed", "Out of memory"
    USER = "user", "By a user"
    DEPENDENCY = "dependency", "A dependency can never complete"


MAX_STOP_GRACE_SECONDS = 3600
MAX_RESTARTS = 10_000
DEFAULT_MAX_RESTARTS = 5
MAX_TIME_LIMIT_SECONDS = 365 * 24 * 3600
MAX_PERSIST_PATH = 255
MAX_PORTS = 16


class Deployment(models.Model):
    """A docker image asking for resources on one cluster; the scheduler decides when it runs."""

    Status = Status

    ACTIVE_STATUSES = (Status.PENDING, Status.RUNNING)
    # The one table of status changes: to -> the statuses it may come from.
    ALLOWED_SOURCES = {
        Status.RUNNING: {Status.PENDING},
        Status.PENDING: {Status.RUNNING},  # preemption
        Status.COMPLETED: {Status.RUNNING},
        Status.FAILED: {Status.RUNNING},
        Status.CANCELLED: {Status.PENDING, Status.RUNNING},
    }

    name = models.CharField(max_length=200)
    # Deleting a cluster takes its finished history with it; the service refuses while work is active.
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="deployments")
    # Whose share of the cluster it draws on (its quota there, its priority ceiling); a project with deployments
    # is kept, its finished history moving to the default project when it is deleted (organizations.projects).
    project = models.ForeignKey("organizations.Project", on_delete=models.PROTECT, related_name="deployments")
    docker_image = models.CharField(max_length=500)
    priority = models.IntegerField(default=0)
    cpu_required = models.DecimalField(**RESOURCE_DECIMAL, default=0)
    ram_required = models.DecimalField(**RESOURCE_DECIMAL, default=0)
    gpu_required = models.PositiveIntegerField(default=0)
    depends_on = models.ManyToManyField("self", symmetrical=False, related_name="dependents", blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, editable=False)
    # Why the deployment reached its status (who preempted it, which dependency failed); the live reason a
    # pending deployment waits is derived when read, so scheduling passes do not rewrite every queued row.
    status_message = models.CharField(max_length=500, blank=True, editable=False)
    preemption_count = models.PositiveIntegerField(default=0, editable=False)
    # The run time thrown away by its preemptions and requeues: each such run, from its start to its end.
    lost_seconds = models.FloatField(default=0, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="deployments", editable=False
    )
    # Stamped by the database, whose clock also tells how long it has waited (the starvation bound), so one
    # clock measures both ends whichever host's process inserted it.
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)
    # What the container runs, on a cluster driven by an agent.
    command = models.JSONField(null=True, blank=True, default=None)
    env = models.JSONField(default=dict, blank=True)
    stop_grace_seconds = models.PositiveIntegerField(default=30)
    exit_code = models.IntegerField(null=True, blank=True, editable=False)
    # How it ends and lives on: restarts in place, a deadline, a volume that outlives its containers.
    restart_policy = models.CharField(max_length=16, choices=RestartPolicy.choices, default=RestartPolicy.NEVER)
    max_restarts = models.PositiveIntegerField(null=True, blank=True, default=DEFAULT_MAX_RESTARTS)
    time_limit_seconds = models.PositiveIntegerField(null=True, blank=True, default=None)
    persist_path = models.CharField(max_length=MAX_PERSIST_PATH, null=True, blank=True, default=None)
    # A service: the TCP ports its container listens on (each published on a free port of the agent's host),
    # and how the agent tells it is ready (the shape is the API's, deployments.serializers).
    ports = models.JSONField(default=list, blank=True)
    health_check = models.JSONField(null=True, blank=True, default=None)
    restart_count = models.PositiveIntegerField(default=0, editable=False)
    end_reason = models.CharField(max_length=32, choices=EndReason.choices, null=True, blank=True, editable=False)
    # The number of its current run attempt (0: never started by an agent): each start on an agent's host
    # is a new attempt; a restart in place keeps it.
    attempt = models.PositiveIntegerField(default=0, editable=False)
    # The number of its current container run (the agent's key): a new one for each attempt and each restart
    # in place, and only the current one's container may live.
    run = models.PositiveIntegerField(default=0, editable=False)

    objects = DeploymentQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(
                fields=("cluster", *QUEUE_ORDER),
                condition=models.Q(status=Status.PENDING),
                name="deployments_pending_queue_idx",
            ),
            models.Index(
                fields=("cluster", "priority"),
                condition=models.Q(status=Status.RUNNING),
                name="deployments_running_idx",
            ),
            # The longest-waiting pending deployment of a cluster: whether any has waited long enough to reserve.
            models.Index(
                fields=("cluster", "created_at"),
                condition=models.Q(status=Status.PENDING),
                name="deployments_pending_since_idx",
            ),
            models.Index(fields=("status", "-created_at"), name="deployments_status_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cpu_required__gte=0, ram_required__gte=0, gpu_required__gte=0),
                name="%(app_label)s_%(class)s_requests_nonnegative",
                violation_error_message="Resource requests cannot be negative.",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=Status.values),
                name="%(app_label)s_%(class)s_status_valid",
                violation_error_message="Unknown status.",
            ),
            models.CheckConstraint(
                condition=models.Q(stop_grace_seconds__lte=MAX_STOP_GRACE_SECONDS),
                name="%(app_label)s_%(class)s_stop_grace_bounded",
                violation_error_message=f"stop_grace_seconds is at most {MAX_STOP_GRACE_SECONDS}.",
            ),
            models.CheckConstraint(
                condition=~models.Q(status=Status.RUNNING) | models.Q(started_at__isnull=False),
                name="%(app_label)s_%(class)s_running_has_started_at",
                violation_error_message="A running deployment has a start time.",
            ),
            models.CheckConstraint(
                condition=models.Q(restart_policy__in=RestartPolicy.values),
                name="%(app_label)s_%(class)s_restart_policy_valid",
                violation_error_message="Unknown restart policy.",
            ),
            models.CheckConstraint(
                condition=models.Q(max_restarts__isnull=True) | models.Q(max_restarts__lte=MAX_RESTARTS),
                name="%(app_label)s_%(class)s_max_restarts_bounded",
                violation_error_message=f"max_restarts is at most {MAX_RESTARTS}.",
            ),
            models.CheckConstraint(
                condition=models.Q(time_limit_seconds__isnull=True)
                | models.Q(time_limit_seconds__gte=1, time_limit_seconds__lte=MAX_TIME_LIMIT_SECONDS),
                name="%(app_label)s_%(class)s_time_limit_bounded",
                violation_error_message=f"time_limit_seconds is between 1 and {MAX_TIME_LIMIT_SECONDS}.",
            ),
            models.CheckConstraint(
                condition=models.Q(lost_seconds__gte=0),
                name="%(app_label)s_%(class)s_lost_seconds_nonnegative",
                violation_error_message="Lost run time cannot be negative.",
            ),
            # A finished deployment says why it ended; an active one has not ended.
            models.CheckConstraint(
                condition=models.Q(status__in=(Status.PENDING, Status.RUNNING), end_reason__isnull=True)
                | (~models.Q(status__in=(Status.PENDING, Status.RUNNING))
                   & models.Q(end_reason__in=EndReason.values)),
                name="%(app_label)s_%(class)s_end_reason_iff_finished",
                violation_error_message="A finished deployment has an end reason, and only a finished one.",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name}"

    @property
    def demand(self) -> Resources:
        return Resources(self.cpu_required, self.ram_required, self.gpu_required)

    @property
    def has_been_scheduled(self) -> bool:
        """Whether it ever started: its placement and how it runs are fixed from then on."""
        return bool(self.status != Status.PENDING or self.started_at or self.preemption_count or self.attempt)

    def can_become(self, status: str) -> bool:
        return self.status in self.ALLOWED_SOURCES[status]

    def status_reason(self, waiting: str = "") -> str:
        """Why the deployment is where it is, in words a user can act on.

        For a pending one, `waiting` is why it waits now (see `deployments.insight.explain_pending`), derived
        when read so that scheduling passes never rewrite every queued row; `status_message` keeps the story of
        the last transition, such as who preempted it.
        """
        if self.status != Status.PENDING:
            return self.status_message or f"Running on cluster '{self.cluster.name}'."
        return f"{self.status_message} Now {waiting}." if self.status_message else waiting[0].upper() + waiting[1:] + "."


class EventKind(models.TextChoices):
    QUEUED = "queued", "Queued"
    SCHEDULED = "scheduled", "Scheduled"
    STARTED = "started", "Started"
    RESTARTED = "restarted", "Restarted"
    STOPPED = "stopped", "Stopped"
    PREEMPTED = "preempted", "Preempted"
    REQUEUED = "requeued", "Requeued"
    DEPENDENCIES_RESOLVED = "dependencies_resolved", "Dependencies resolved"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    READY = "ready", "Ready"
    NOT_READY = "not_ready", "Not ready"


class DeploymentEventQuerySet(models.QuerySet):
    """Writing events wakes the streams of their deployments once the write commits: a hint to read again,
    sent from here because events are written in many places and a stream must miss none of them."""

    def create(self, **kwargs):
        event = super().create(**kwargs)
        announce(event.deployment_id)
        return event

    def bulk_create(self, objs, *args, **kwargs):
        created = super().bulk_create(objs, *args, **kwargs)
        if created:
            announce(*{event.deployment_id for event in created})
        return created


class DeploymentEvent(models.Model):
    """One entry of a deployment's status history."""

    Kind = EventKind

    objects = DeploymentEventQuerySet.as_manager()

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    message = models.CharField(max_length=500)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("at", "id")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=EventKind.values),
                name="%(app_label)s_%(class)s_kind_valid",
                violation_error_message="Unknown event kind.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.deployment_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class AttemptState(models.TextChoices):
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    EXITED = "exited", "Exited"


OPEN_ATTEMPT_STATES = (AttemptState.STARTING, AttemptState.RUNNING, AttemptState.STOPPING)


class RunAttempt(models.Model):
    """One container run of a deployment on its agent's host, in the state last reported.

    `starting` until the agent reports the container running (while `not_before` is ahead, the run waits out
    a restart's backoff), `stopping` once the deployment no longer holds resources while its container may
    live, then `stopped` when it is gone, or `exited` when the container ended by itself (its exit finished
    the deployment, or was followed by a restart in place: the next run of the same attempt).
    """

    State = AttemptState
    # Whose container may still live: the agent acts on these, and the sync reads exactly them.
    OPEN_STATES = OPEN_ATTEMPT_STATES

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()  # the deployment's `run` when it was made: the agent's key
    attempt = models.PositiveIntegerField()  # the deployment's `attempt` it is a run of: what users see
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="attempts")
    # The restart it is (0: the attempt's first run), as the backoff counts it: 0 again after a long run.
    restart_step = models.PositiveIntegerField(default=0)
    not_before = models.DateTimeField(null=True, blank=True)  # a restart waits out its backoff until then
    running_since = models.DateTimeField(null=True, blank=True)  # when the agent first reported it running
    container = models.CharField(max_length=128, blank=True)
    state = models.CharField(max_length=16, choices=AttemptState.choices, default=AttemptState.STARTING)
    exit_code = models.IntegerField(null=True, blank=True)
    # Where its ports are published, as its agent last reported them: [{port, host, host_port}]. The next run
    # of the same attempt asks for the same host ports, so a service's URL outlives a restart in place.
    endpoints = models.JSONField(default=list, blank=True)
    # Whether its health check passes, as its agent last reported it: false until the first success.
    ready = models.BooleanField(default=False)
    # Raw bytes of its output received so far: a chunk sent again, or late, adds nothing.
    log_bytes = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("deployment", "number")
        indexes = [
            models.Index(fields=("agent",), condition=models.Q(state__in=OPEN_ATTEMPT_STATES),
                         name="deployments_open_attempts_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=("deployment", "number"), name="%(app_label)s_%(class)s_number_unique",
                                    violation_error_message="A deployment's attempts are numbered once each."),
            models.CheckConstraint(condition=models.Q(state__in=AttemptState.values),
                                   name="%(app_label)s_%(class)s_state_valid", violation_error_message="Unknown state."),
        ]

    def __str__(self) -> str:
        return f"#{self.deployment_id} attempt {self.number} ({self.state})"

    @property
    def live_endpoints(self) -> list[dict]:
        """Where its ports are reached: only while its container runs."""
        return self.endpoints if self.state == AttemptState.RUNNING else []

    @property
    def passing(self) -> bool:
        """Its container runs and passes its health check (as `passing_its_check` asks the database)."""
        return self.ready and self.state == AttemptState.RUNNING


def passing_its_check() -> models.Exists:
    """Whether a deployment's current container runs and its agent last found it ready."""
    return models.Exists(RunAttempt.objects.filter(
        deployment=models.OuterRef("pk"), number=models.OuterRef("run"), state=AttemptState.RUNNING, ready=True))


class DeploymentLog(models.Model):
    """The tail of what a deployment's containers wrote, cleaned to text, bounded in size."""

    deployment = models.OneToOneField(Deployment, on_delete=models.CASCADE, primary_key=True, related_name="log")
    text = models.TextField(blank=True)
    # Older output was dropped to keep the size bounded.
    truncated = models.BooleanField(default=False)
    # How many lines and characters were dropped from the front, counted in the writing transaction: a line's
    # id (what a follower resumes from) is its place in all the output ever written, stable across trims.
    dropped_lines = models.PositiveBigIntegerField(default=0)
    dropped_chars = models.PositiveBigIntegerField(default=0)
