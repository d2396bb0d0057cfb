"""The framework internals hypervisor_mlops/internals.py reaches into, checked against the installed versions:
when an upgrade moves one, the test of that one fails, by name."""
import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils.functional import SimpleLazyObject

from deployments.models import Deployment
from hypervisor_mlops.internals import evaluated_user, redis_client, set_prefetched
from tests.factories import ClusterFactory, UserFactory


def test_redis_client_is_the_caches_own_connection_to_the_server_that_holds_the_key():
    cache = caches["default"]
    assert isinstance(cache, RedisCache), "the suite runs with REDIS_URL set"
    full_key = cache.make_and_validate_key("internals-probe")
    client = redis_client(cache, full_key)
    client.set(full_key, 41)
    assert client.incr(full_key) == 42
    assert cache.get("internals-probe") == 42  # the cache reads what the client wrote: same server, same db
    cache.delete("internals-probe")


@pytest.mark.django_db
def test_evaluated_user_never_loads_the_lazy_user_and_sees_one_already_loaded():
    user = UserFactory()
    loads = []
    request = RequestFactory().get("/")
    request.user = SimpleLazyObject(lambda: loads.append(1) or user)
    with CaptureQueriesContext(connection) as queries:
        assert evaluated_user(request) is None
    assert loads == [] and len(queries) == 0
    assert request.user.is_authenticated  # something else loads it
    assert evaluated_user(request) == user
    request.user = AnonymousUser()
    assert evaluated_user(request) is None


@pytest.mark.django_db
def test_set_prefetched_answers_a_relation_from_the_rows_given_without_a_query():
    cluster = ClusterFactory()
    deployment = Deployment.objects.create(cluster=cluster, project=cluster.organization.default_project,
                                           created_by=UserFactory(), name="d", docker_image="img")
    dependency = Deployment.objects.create(cluster=cluster, project=deployment.project,
                                           created_by=deployment.created_by, name="dep", docker_image="img")
    set_prefetched(deployment, "depends_on", [dependency])
    set_prefetched(deployment, "attempts", [])
    with CaptureQueriesContext(connection) as queries:
        assert list(deployment.depends_on.all()) == [dependency]
        assert list(deployment.attempts.all()) == []
    assert len(queries) == 0
