"""Held-out score of a training run, for the quality benchmarks (``scripts/bench_*.py``).

A run is the training command (``python -m aslfs_pl.cli``, what ``scripts/fit.py`` runs) in its
own process, as a user runs it; its score is read back from
the run's ``metrics.csv``. Results are kept in a JSON file keyed by row name so that a benchmark
interrupted half-way resumes where it stopped.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import time
from pathlib import Path

from aslfs_pl.bench.plots import epoch_metrics


def fit_and_score(args: list[str], root: Path, metric: str = "val/score") -> dict:
    """Run the training command with ``args`` into ``root``; the final and best ``metric``, the epochs and the
    seconds taken, and under ``scores`` the final and best of every ``val/score*`` metric (the
    per-decoding scores of a run with the CTC head).

    The run's output goes to ``<root>.log``.
    """
    cmd = [
        *[sys.executable, "-m", "aslfs_pl.cli", *args],
        *["--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false"],
    ]
    root.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(root.with_suffix(".log"), "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    runs = sorted(
        root.glob("lightning_logs/version_*/metrics.csv"), key=lambda p: p.stat().st_mtime
    )
    metrics = epoch_metrics(runs[-1])
    scores = {
        name: {"final": values[max(values)], "best": max(values.values())}
        for name, values in metrics.items()
        if name.startswith("val/score")
    }
    return {
        **scores[metric],
        "epochs": max(metrics[metric]) + 1,
        "seconds": seconds,
        "scores": scores,
    }


def with_metric(row: dict, metric: str) -> dict:
    """``row`` (from :func:`fit_and_score`) scored by another of its run's metrics."""
    if metric not in row.get("scores", {}):
        raise KeyError(
            f"the run logged no {metric!r} (it has {', '.join(row.get('scores', [])) or 'none'}):"
            " a row from an older benchmark? delete it from the results file to rerun it"
        )
    return {**row, **row["scores"][metric]}


class Results:
    """Rows of a benchmark in a JSON file: finished rows are kept and not rerun. Several
    benchmark processes may share the file (e.g. one per seed on a machine with more cores): each
    row is merged into the file's current content under a lock. Rows are only ever added: to
    rerun one, delete it from the file while no benchmark runs."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: dict[str, dict] = {}
        self._read()

    def _read(self) -> None:
        if self.path.exists():
            self.rows.update(json.loads(self.path.read_text()))

    def __contains__(self, key: str) -> bool:
        self._read()
        return key in self.rows

    def add(self, key: str, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._read()
            self.rows[key] = row
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.rows, indent=1))
            tmp.replace(self.path)

    def table(self) -> str:
        lines = ["| row | final score | best epoch | epochs | minutes |", "|---|---|---|---|---|"]
        for key, r in self.rows.items():
            lines.append(
                f"| {key} | {r['final']:.3f} | {r['best']:.3f} | {r['epochs']} | "
                f"{r['seconds'] / 60:.1f} |"
            )
        return "\n".join(lines)
