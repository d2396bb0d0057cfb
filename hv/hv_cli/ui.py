"""How hv shows things: Rich tables and notes for people, one JSON object per line for scripts (`-o json`)."""
import json
import sys

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

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
        """Aligned columns under a bold header. Measured by bench/hv_ps.py, rich.table.Table takes half a second
        to lay out 1,000 rows (it measures every cell for wrapping), so rows are padded here and printed as
        one text: a long last column is left to the terminal."""
        cells = [[("" if cell is None else str(cell)) for cell in row] for row in rows]
        widths = [max([cell_len(column), *(cell_len(row[i]) for row in cells)]) for i, column in enumerate(columns)]

        def line(values: list[str]) -> str:
            pairs = zip(values[:-1], widths[:-1], strict=True)
            padded = [value + " " * (width - cell_len(value)) for value, width in pairs]
            return "  ".join([*padded, values[-1]])

        text = Text()
        text.append(line(columns), style="bold")
        text.append("".join("\n" + line(row) for row in cells))
        self.out.print(text, crop=False, overflow="ignore", no_wrap=True)

    def listing(self, objects: list[dict], columns: list[str], cells) -> None:
        """A list of the API's objects: each as it is with `-o json`, else a table of `cells(object)`."""
        if self.json:
            for value in objects:
                self.emit(value)
        else:
            self.table(columns, [cells(value) for value in objects])

    def line(self, text: str) -> None:
        """A line of a deployment's output, as it was written (no markup, no highlighting)."""
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
