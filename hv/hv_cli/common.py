"""What every hv command shares: `-o json` and `--server`, and API errors as one line with exit code 1."""
import functools
import sys

import click

from .client import ApiError
from .manifest import ManifestError
from .ui import Ui


class Group(click.Group):
    """A click group whose commands print an API error as `hv: <the API's message>` and exit 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (ApiError, ManifestError) as error:
            click.echo(f"hv: {error}", err=True)
            sys.exit(1)


def command(parent: click.Group, name: str | None = None, **settings):
    """A subcommand of `parent` taking `-o/--output` and `--server`; the function gets a `Ui` first."""
    def decorate(function):
        @functools.wraps(function)
        def run(output: str, server: str | None, **kwargs):
            return function(Ui(output, server), **kwargs)

        run = click.option("--server", metavar="URL",
                           help="The API's address (default: HV_SERVER, else the server of `hv login`).")(run)
        run = click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
                           show_default=True, help="json: one JSON object per line, for scripts.")(run)
        return parent.command(name, **settings)(run)
    return decorate


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hv")
def cli():
    """hv, the command line of hypervisor-mlops: submit deployments, watch them, follow their output.

    \b
    Example:
      hv login --server http://127.0.0.1:8000 --username ada
      hv run --cluster 1 --cpu 1 --attach localhost/busybox:test -- sh -c 'echo hello'
      hv ps -w
    """
