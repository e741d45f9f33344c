"""A Lightning callback that writes each epoch's wall-clock time and validation scores.

Standalone (it imports Lightning only), so it runs inside any version of this project, an older
checkout included: ``scripts/bench_time_to_quality.py`` puts this folder on ``PYTHONPATH`` and
adds ``--trainer.callbacks+=epoch_clock.EpochClock``. One JSON line per epoch goes to the file
named by ``$EPOCH_CLOCK_FILE``: ``{"epoch", "seconds" (since the fit started), "val/score",
"val/score_<decoding>", ...}``.
"""

from __future__ import annotations

import json
import os
import time

from lightning.pytorch import Callback


class EpochClock(Callback):
    """See the module doc."""

    def __init__(self) -> None:
        self.path = os.environ.get("EPOCH_CLOCK_FILE", "epoch_clock.jsonl")
        self.start = time.perf_counter()

    def on_fit_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # validation at the epoch's end has run by now: its scores are in callback_metrics
        row = {"epoch": trainer.current_epoch, "seconds": time.perf_counter() - self.start}
        for name, value in trainer.callback_metrics.items():
            if name.startswith("val/score"):
                row[name] = float(value)
        if trainer.is_global_zero:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
