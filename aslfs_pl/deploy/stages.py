"""Stages of a long deploy job: one error type naming the stage, timing, and progress display.

A job (conversion, a parity check) runs as named stages. Each stage is logged with its time;
on a terminal a rich progress display also shows the current stage, the elapsed time, and a bar
over the stages (or over the steps of a stage that has countable steps, see :meth:`Job.track`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator

from aslfs_pl.progress import display

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """A deploy job failed; the message names the stage (load, check, trace, lower, write, ...)
    and the cause."""


class Job:
    """A sequence of named stages (see the module doc).

    Args:
        title: what the job does (e.g. "convert fp16").
        stages: the stage names, in order (the bar counts them).
        progress: show the rich display (None: when stderr is a terminal).
    """

    def __init__(self, title: str, stages: list[str], progress: bool | None = None):
        self.title, self.stages = title, stages
        self.display = display(progress)
        self.t0 = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def __enter__(self) -> Job:
        self.display.start()
        self.bar = self.display.add_task(self.title, total=len(self.stages))
        return self

    def __exit__(self, *exc) -> None:
        self.display.stop()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Run the block as stage ``name``: any failure becomes an :class:`ExportError` naming it."""
        t0 = time.perf_counter()
        step = self.stages.index(name) + 1 if name in self.stages else "-"
        self.display.update(
            self.bar, description=f"{self.title}: {name} ({step}/{len(self.stages)})"
        )
        log.info("%s: %s ...", self.title, name)
        try:
            yield
        except ExportError:
            raise
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise ExportError(f"[{name}] {type(err).__name__}: {first[:500]}") from err
        self.seconds[name] = time.perf_counter() - t0
        self.display.advance(self.bar)
        log.info("%s: %s done in %.1fs", self.title, name, self.seconds[name])

    def track(self, items: Iterable, total: int, description: str) -> Iterator:
        """Iterate ``items`` with a bar of their own (for a stage with countable steps)."""
        task = self.display.add_task(f"  {description}", total=total)
        for item in items:
            yield item
            self.display.advance(task)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0
