"""Shared fixtures: API clients, users, members of an organization with a given role, a cluster of it, and the
OpenAPI document."""
import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from organizations.models import Role
from tests.factories import ClusterFactory, MembershipFactory, OrganizationFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    # Throttle counters live in the shared Redis; each test starts from zero.
    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def auth_client(user) -> APIClient:
    return client_for(user)


@pytest.fixture
def organization(db):
    return OrganizationFactory()


@pytest.fixture
def member(organization):
    """member(role) -> an API client for a new user holding that role in `organization`."""

    def make(role: str = Role.DEVELOPER) -> APIClient:
        membership = MembershipFactory(organization=organization, role=role)
        client = client_for(membership.user)
        client.user = membership.user
        return client

    return make


@pytest.fixture
def dev(member):
    """An API client of a developer in `organization`."""
    return member(Role.DEVELOPER)


@pytest.fixture
def admin(member):
    """An API client of an admin of `organization`."""
    return member(Role.ADMIN)


@pytest.fixture
def cluster(organization):
    """A cluster of `organization` with 4 CPU, 16 GB and 2 GPUs (modules that need another size define their own)."""
    return ClusterFactory(organization=organization, cpu_limit="4", ram_limit="16", gpu_limit=2)


@pytest.fixture
def schema(api_client) -> dict:
    """The OpenAPI document as Swagger UI reads it."""
    response = api_client.get("/swagger.json")
    assert response.status_code == 200
    return response.json()
