"""Agents: the program on a cluster's host that runs its deployments as containers, and its credentials."""
import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone

from organizations.models import TenantQuerySet

TOKEN_PREFIX = "hva_"


def generate_token() -> str:
    """256 random bits; the prefix tells an agent token from a JWT at a glance (and in a leaked log)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def generate_uid() -> str:
    return uuid.uuid4().hex


def hash_token(token: str) -> str:
    # A fast hash is right for a random 256-bit secret: there is nothing to brute-force, unlike a password.
    return hashlib.sha256(token.encode()).hexdigest()


class AgentQuerySet(TenantQuerySet):
    organization_path = "cluster__organization__"

    def live(self) -> "AgentQuerySet":
        """Not revoked: the agents that may call and whose clusters they drive."""
        return self.filter(revoked_at__isnull=True)

    def silent_since(self, moment: datetime) -> "AgentQuerySet":
        """Not heard from since `moment` (one never connected counts from its registration)."""
        return self.annotate(last_heard_at=Coalesce("last_seen_at", "created_at")).filter(last_heard_at__lt=moment)


class Agent(models.Model):
    """The one agent of a cluster: it authenticates with a token shown once, and reports what runs."""

    class Status(models.TextChoices):
        NEW = "new", "New"
        ONLINE = "online", "Online"
        OFFLINE = "offline", "Offline"

    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=200)
    # Labels the containers it creates, so an agent restarted with the same token adopts exactly its own.
    uid = models.CharField(max_length=32, unique=True, default=generate_uid, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    hostname = models.CharField(max_length=255, blank=True, editable=False)
    version = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_seen_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Revoked agents keep their row, so the agent is told it was revoked (and stops its containers) rather
    # than that its token is unknown.
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ("id",)
        constraints = [
            models.UniqueConstraint(
                fields=("cluster",),
                condition=models.Q(revoked_at__isnull=True),
                name="%(app_label)s_%(class)s_one_live_per_cluster",
                violation_error_message="This cluster already has an agent; revoke it first.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def last_heard_at(self) -> datetime:
        return self.last_seen_at or self.created_at

    def status_at(self, now: datetime) -> str:
        if self.last_seen_at is None:
            return self.Status.NEW
        if now - self.last_seen_at < timedelta(seconds=settings.AGENT_OFFLINE_AFTER_SECONDS):
            return self.Status.ONLINE
        return self.Status.OFFLINE

    @property
    def status(self) -> str:
        return self.status_at(timezone.now())

    def is_lost_at(self, now: datetime) -> bool:
        """Silent so long that its cluster's running deployments are requeued and nothing starts there."""
        return now - self.last_heard_at >= timedelta(seconds=settings.AGENT_LOST_AFTER_SECONDS)
