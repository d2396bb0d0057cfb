"""The agent-facing API tests' fixture: the test itself speaking as the cluster's registered agent."""
import pytest

from tests.agents.sync import agent_client, register


@pytest.fixture
def agent(admin, cluster):
    """The test speaking as the cluster's registered agent."""
    registered = register(admin, cluster)
    client = agent_client(registered["token"])
    client.registered = registered
    return client
