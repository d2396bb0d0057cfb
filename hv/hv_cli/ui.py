"""How hv shows things: Rich tables and notes for people, one JSON object per line for scripts (`-o json`)."""
import json
import sys

from rich.console import Console
from rich.table import Table

from .client import Session


class Ui:
    """What a command needs: the API session and the chosen output."""

    def __init__(self, output: str, server: str | None) -> None:
        self.json = output == "json"
        self.server = server
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self._session: Session | None = None

    @property
    def api(self) -> Session:
        if self._session is None:
            self._session = Session(self.server)
        return self._session

    def emit(self, value) -> None:
        """One JSON document on one line (what `-o json` prints, per object with -w and -f)."""
        sys.stdout.write(json.dumps(value, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def note(self, text: str) -> None:
        """Words for the person at the terminal, on stderr so they never mix with output or JSON."""
        self.err.print(text, markup=False)

    def table(self, columns: list[str], rows: list[list]) -> None:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*("" if cell is None else str(cell) for cell in row))
        self.out.print(table)

    def line(self, text: str) -> None:
        """A line of a deployment's output, as it was written (no markup, no highlighting)."""
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
