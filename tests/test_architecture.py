"""R7 of ../shared/ARCHITECTURE.md: no module of the server is longer than 500 lines (a longer one has two jobs).

R1 to R6 are import-linter contracts (pyproject.toml, run by bin/test); R2's protocol test is
tests/agents/test_protocol.py.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = ("scheduling", "hypervisor_mlops", "accounts", "organizations", "clusters", "deployments", "agents",
          "cluster_agent")
MAX_LINES = 500


def test_no_module_of_the_server_is_longer_than_500_lines():
    modules = [path for package in SERVER for path in (ROOT / package).rglob("*.py")]
    assert len(modules) > 50, "the packages were not found where this test looks"
    too_long = {str(path.relative_to(ROOT)): lines for path in modules
                if (lines := len(path.read_text().splitlines())) > MAX_LINES}
    assert too_long == {}
