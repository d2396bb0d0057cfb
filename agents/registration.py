"""Registering and revoking a cluster's agent: the cluster is driven by it from the one to the other."""
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import NotFound

from clusters.locks import lock_cluster
from clusters.models import Cluster
from deployments.attempts import hand_over_to_agent, release_from_agent
from deployments.tasks import request_scheduling
from hypervisor_mlops.api.exceptions import Conflict

from .models import Agent, generate_token, hash_token

ONE_AGENT = "This cluster already has an agent; revoke it first."


def register_agent(*, cluster_id: int, name: str) -> tuple[Agent, str]:
    """A new agent for the cluster, and its token, which exists in clear only in this return value.

    From now on the cluster is driven by the agent: what already runs there gets a container too. A cluster
    has one agent at a time (409).
    """
    token = generate_token()
    with transaction.atomic():
        try:
            cluster = lock_cluster(cluster_id)
        except Cluster.DoesNotExist:  # deleted since the view found it
            raise NotFound("No such cluster.") from None
        if Agent.objects.live().filter(cluster=cluster).exists():
            raise Conflict(ONE_AGENT)
        try:
            with transaction.atomic():
                agent = Agent.objects.create(cluster=cluster, name=name, token_hash=hash_token(token))
        except IntegrityError as exc:  # the partial unique index, should the check above ever be bypassed
            raise Conflict(ONE_AGENT) from exc
        hand_over_to_agent(cluster=cluster, agent=agent)
    return agent, token


def revoke_agent(*, agent_id: int) -> None:
    """The token stops working at once; the agent, told so on its next call, stops its containers and exits."""
    with transaction.atomic():
        cluster_id = Agent.objects.values_list("cluster_id", flat=True).get(pk=agent_id)
        cluster = lock_cluster(cluster_id)
        agent = Agent.objects.get(pk=agent_id)
        agent.revoked_at = timezone.now()
        agent.save(update_fields=["revoked_at"])
        release_from_agent(cluster=cluster, agent=agent)
        request_scheduling(cluster.pk)
