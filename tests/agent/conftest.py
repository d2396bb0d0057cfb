"""The agent's fixtures: a private Podman service for the tests that need real containers."""
from tests.runtime import container_runtime

__all__ = ["container_runtime"]
