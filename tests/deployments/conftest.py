"""Fixtures of the deployment tests."""
import pytest

from organizations.models import Role


@pytest.fixture
def dev(member):
    """An API client of a developer in `organization`."""
    return member(Role.DEVELOPER)
