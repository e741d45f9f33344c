"""Progress display where a person waits: rich bars on stderr, quiet when it is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


def display(enabled: bool | None = None) -> Progress:
    """A rich progress display: description, bar, count, elapsed and remaining time.

    ``enabled`` None: only when stderr is a terminal. Bound to the real stderr at creation, so it
    keeps refreshing while library chatter is silenced by redirecting ``sys.stderr``.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        disable=not enabled,
    )


def bar(
    items: Iterable[T], total: int, description: str, enabled: bool | None = None
) -> Iterator[T]:
    """Iterate ``items`` with a progress bar (see :func:`display`)."""
    with display(enabled) as shown:
        task = shown.add_task(description, total=total)
        for item in items:
            yield item
            shown.advance(task)
