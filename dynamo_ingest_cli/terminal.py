"""How the CLI's output fits where it goes: a terminal, or a pipe or file that nobody reads
at a width."""

from __future__ import annotations

from rich.console import Console

# Off a terminal a pipe or a log file gets whole lines: a table cut at 80 columns loses the
# end of every s3:// URI.
UNWRAPPED_WIDTH = 10_000


def fit_to_output(*consoles: Console) -> None:
    """Give every console that does not write to a terminal a width that cuts nothing."""
    for each in consoles:
        if not each.is_terminal:
            each.width = UNWRAPPED_WIDTH
