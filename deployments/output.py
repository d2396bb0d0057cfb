"""Pure: container output cleaned to storable text, kept bounded, and read back as its last lines."""
LOG_KEEP_CHARS = 2**20
# Trimming rewrites the text, so it waits until the text is twice the size kept: amortized, not per chunk.
LOG_TRIM_AT_CHARS = 2 * LOG_KEEP_CHARS
MAX_TAIL = 10_000


def clean_output(raw: bytes) -> str:
    """Text any database takes: bytes that are not UTF-8 are replaced, NUL bytes dropped."""
    return raw.decode("utf-8", errors="replace").replace("\x00", "")


def bounded(text: str) -> tuple[str, bool]:
    """At least the last LOG_KEEP_CHARS characters, from the start of a line where one is near; and whether
    anything was dropped."""
    if len(text) <= LOG_TRIM_AT_CHARS:
        return text, False
    cut = len(text) - LOG_KEEP_CHARS
    line_start = text.rfind("\n", 0, cut) + 1
    return text[line_start or cut:], True


def last_lines(text: str, n: int) -> tuple[list[str], bool]:
    """The last n lines, oldest first, and whether earlier lines exist."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return (lines[-n:] if n else []), len(lines) > n


def trimmed(text: str) -> tuple[str, int, int]:
    """`bounded`, with how many characters and how many whole lines it dropped from the front."""
    kept, _ = bounded(text)
    cut = len(text) - len(kept)
    return kept, cut, text.count("\n", 0, cut)


def complete_lines(text: str) -> tuple[list[str], str]:
    """The lines that end in a newline (without it, nor a carriage return before it), and what follows the last."""
    *lines, rest = text.split("\n")
    return [line.removesuffix("\r") for line in lines], rest
