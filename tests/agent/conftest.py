"""The agent's fixtures: a private Podman service, and bin/agent installed before any test times it."""
import subprocess

import pytest

from tests.agent.processes import ROOT
from tests.runtime import container_runtime

__all__ = ["container_runtime", "agent_installed"]


@pytest.fixture(scope="session")
def agent_installed() -> None:
    """bin/agent creates its virtualenv on first use; do that once, not inside a test's liveness window."""
    subprocess.run([str(ROOT / "bin" / "agent"), "--help"], check=True, capture_output=True, timeout=600)
