"""The `hv` console script: the command group with every command registered."""
from . import account, workloads  # noqa: F401 (each registers its commands on `cli`)
from .common import cli


def main() -> None:
    cli(prog_name="hv")
