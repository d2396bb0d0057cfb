"""The agent: runs a cluster's deployments as containers on its host and reports what it sees to the server."""

__version__ = "1.0.0"
