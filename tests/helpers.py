"""Test-only Lightning pieces (never used by the product)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from lightning.pytorch import Callback
from lightning.pytorch.accelerators import XLAAccelerator


class CPUXLAAccelerator(XLAAccelerator):
    """torch-xla's CPU device (PJRT_DEVICE=CPU) presented as one XLA device.

    Lightning's ``accelerator="tpu"`` asks a TPU metadata server, which this machine has not; these
    four overrides are what it takes to run the XLA strategy on ``xla:0`` here.
    """

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def auto_device_count() -> int:
        return 1

    @staticmethod
    def parse_devices(devices) -> int:
        return 1

    @staticmethod
    def get_parallel_devices(devices) -> list[torch.device]:
        return [torch.device("xla", 0)]


class CountCompilations(Callback):
    """Records torch-xla's compilation count after every training batch, and the device-to-host
    transfers so far (``TransferFromDeviceTime`` samples; ``aten::_local_scalar_dense`` calls,
    i.e. ``.item()`` / ``bool()`` / ``int()`` of a device tensor)."""

    def __init__(self):
        self.counts: list[int] = []
        self.transfers: list[int] = []
        self.scalars: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        import torch_xla
        import torch_xla.debug.metrics as met

        torch_xla.sync()
        data = met.metric_data("CompileTime")
        self.counts.append(0 if data is None else int(data[0]))
        moved = met.metric_data("TransferFromDeviceTime")
        self.transfers.append(0 if moved is None else int(moved[0]))
        self.scalars.append(int(met.counter_value("aten::_local_scalar_dense") or 0))


class RecordSequences(Callback):
    """Writes, per rank, the training sequence ids seen and the local score-metric sums."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.train_ids: list[int] = []
        self.val_local: list[tuple[float, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.train_ids += [int(i) for i in batch["sequence_id"].tolist() if i >= 0]

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        m = pl_module.val_score
        self.val_local.append((float(m.errors), float(m.total)))

    def on_fit_end(self, trainer, pl_module) -> None:
        out = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "train_ids": self.train_ids,
            "val_local": self.val_local,
            "val_score": float(trainer.callback_metrics["val/score"]),
        }
        path = Path(self.out_dir) / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps(out))


class StopAfterEpochs(Callback):
    """Stops a run after ``epochs`` epochs, as an interruption would (the schedule is unchanged)."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


class PoisonWeights(Callback):
    """Sets one weight to NaN before training step ``at_step`` (to test the non-finite check)."""

    def __init__(self, at_step: int):
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("nan")


def run_child(code: str, args: list[str], timeout: int, **env: str) -> dict:
    """Runs ``python -c code <args as JSON>`` in a fresh process from the repository root, with
    ``env`` added to the environment, and returns the JSON it printed after ``RESULT ``.

    A fresh process: torch's autograd engine sizes its device queues before torch-xla's device
    exists when other tests ran first in the same process, and XLA settings (SPMD, the device
    count) are per process."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)], cwd=root, capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(root), **env), timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return {**json.loads(line[len("RESULT ") :]), "stdout": proc.stdout[-3000:]}
