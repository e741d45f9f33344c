"""What the commands print: the project's own lines, none of the library chatter named here
(the export, evaluation and prediction scripts are checked by
``tests/commands/test_evaluate.py``, which runs them anyway).

Each forbidden line is named with where it came from; a new kind of noise is added to
:data:`FORBIDDEN` on purpose (with its cause removed), not let through by accident."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import ROOT, TINY

#: A line a command must not print -> where it came from.
FORBIDDEN = {
    "Defaulting to PJRT_DEVICE": "torch-xla choosing a device for a run that asked for none",
    "tensorboardX": "Lightning building a default logger of its own",
    "litlogger": "Lightning's tip for its cloud logger",
    "has `__len__` defined": "Lightning's IterableDataset warning (the stream's length is exact)",
    "FLOPs": "a model summary without an example input",
    "TPU available": "Lightning's device report",
    "GPU available": "Lightning's device report",
    "Seed set to": "Lightning's seed line",
    "absl::InitializeLog": "absl's preamble (the converter)",
    "oneDNN custom operations": "TensorFlow's informational lines (the converter)",
    "XNNPACK delegate": "the TFLite interpreter's delegate note",
}


def run(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PJRT_DEVICE", "XLA_FLAGS")}
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout + proc.stderr


def assert_quiet(output: str) -> None:
    found = {line: why for line, why in FORBIDDEN.items() if line in output}
    assert not found, f"printed: {found}\n{output[-3000:]}"


def test_a_fit_prints_what_it_trains_on_what_and_where_the_results_went(synthetic_dir, tmp_path):
    output = run(
        "scripts/fit.py", "--config", TINY, "--data.data_dir", str(synthetic_dir),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
    )  # fmt: skip
    assert_quiet(output)
    for said in ("data: ", "model: ", "training on cpu x1", "checkpoint (", "logs: ", "held-out"):
        assert said in output, said
