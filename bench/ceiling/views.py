"""Exactly the database work of a submission and of a cluster list, through DRF and simplejwt.

A submission: authenticate the JWT (simplejwt reads the user), read the cluster with the caller's role in
its organization (one join), check the role, insert the deployment and its `queued` event in one
transaction, and after commit send the coalesced scheduling message (a marker in the shared cache, the
service's task by name). A cluster list: one page of the clusters of the caller's organizations.
"""
from celery import Celery
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

PAGE_SIZE = 50
MANAGERS = ("admin", "developer")
# The service's marker key and TTL (deployments.tasks), so its worker clears the marker a message set.
MARKER_TTL_SECONDS = 60
SCHEDULE_TASK = "deployments.tasks.schedule_cluster_task"

broker = Celery("ceiling", broker=settings.CELERY_BROKER_URL)


class SubmissionSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    cluster = serializers.IntegerField(min_value=1)
    docker_image = serializers.CharField(max_length=500)
    priority = serializers.IntegerField(default=0)
    cpu_required = serializers.DecimalField(max_digits=12, decimal_places=3, min_value=0, default=0)
    ram_required = serializers.DecimalField(max_digits=12, decimal_places=3, min_value=0, default=0)
    gpu_required = serializers.IntegerField(min_value=0, default=0)


def send_scheduling(cluster_id: int) -> None:
    if cache.add(f"scheduling-queued:{cluster_id}", 1, timeout=MARKER_TTL_SECONDS):
        broker.send_task(SCHEDULE_TASK, (cluster_id,))


class DeploymentsView(APIView):
    def post(self, request):
        body = SubmissionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        with connection.cursor() as cur:
            cur.execute(
                "SELECT c.name, m.role FROM clusters_cluster c JOIN organizations_membership m "
                "ON m.organization_id = c.organization_id AND m.user_id = %s WHERE c.id = %s",
                [request.user.pk, data["cluster"]],
            )
            row = cur.fetchone()
        if row is None:
            raise NotFound()
        cluster_name, role = row
        if role not in MANAGERS:
            raise PermissionDenied("Viewers cannot create deployments.")
        now = timezone.now()
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "INSERT INTO deployments_deployment (name, cluster_id, docker_image, priority, cpu_required, "
                "ram_required, gpu_required, status, status_message, preemption_count, created_by_id, created_at, "
                "env, stop_grace_seconds, attempt) VALUES (%s, %s, %s, %s, %s, %s, %s, 'pending', '', 0, %s, %s, "
                "'{}', 30, 0) RETURNING id",
                [data["name"], data["cluster"], data["docker_image"], data["priority"], data["cpu_required"],
                 data["ram_required"], data["gpu_required"], request.user.pk, now],
            )
            (deployment_id,) = cur.fetchone()
            cur.execute(
                "INSERT INTO deployments_deploymentevent (deployment_id, kind, message, at) "
                "VALUES (%s, 'queued', %s, %s)",
                [deployment_id, f"Queued on cluster '{cluster_name}' with priority {data['priority']}.", now],
            )
            transaction.on_commit(lambda: send_scheduling(data["cluster"]))
        return Response({"id": deployment_id, **body.data, "status": "pending", "created_at": now},
                        status=status.HTTP_201_CREATED)


class ClustersView(APIView):
    def get(self, request):
        with connection.cursor() as cur:
            cur.execute(
                "SELECT c.id, c.organization_id, c.name, c.cpu_limit, c.ram_limit, c.gpu_limit, c.cpu_allocated, "
                "c.ram_allocated, c.gpu_allocated, c.created_at FROM clusters_cluster c "
                "JOIN organizations_membership m ON m.organization_id = c.organization_id AND m.user_id = %s "
                "ORDER BY c.id LIMIT %s",
                [request.user.pk, PAGE_SIZE],
            )
            rows = cur.fetchall()
        return Response({"results": [
            {"id": r[0], "organization": r[1], "name": r[2], "cpu_limit": str(r[3]), "ram_limit": str(r[4]),
             "gpu_limit": r[5], "cpu_allocated": str(r[6]), "ram_allocated": str(r[7]), "gpu_allocated": r[8],
             "created_at": r[9]}
            for r in rows
        ]})
