"""What several test modules share: paths, tiny networks and inputs, Lightning callbacks and a
child-process runner (never used by the product)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from lightning.pytorch import Callback
from lightning.pytorch.accelerators import XLAAccelerator

from aslfs_pl.data.landmarks import LandmarkSet
from aslfs_pl.model.config import ModelConfig
from aslfs_pl.model.seq2seq import Seq2Seq

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")
COLUMNS = [f"{a}_left_hand_{i}" for a in "xy" for i in range(6)]  # what tiny_net reads

# Two blocks everywhere: the stacks' own wiring (layer to layer) is exercised.
TINY_MODEL = dict(
    num_columns=12, num_axes=2, max_frames=40, max_target_len=8, dim=32, heads=2, mlp_ratio=2,
    stem_conf=dict(blocks=2, kernel=5), encoder_blocks=2,
    encoder_conf=dict(local_layers=2, window=4), decoder_blocks=2, dropout=0.0,
)  # fmt: skip
# One block each and 16 frames: what the deployment graph and the decodings are checked on.
ONE_BLOCK = dict(
    max_frames=16, stem_conf=dict(blocks=1, kernel=5), encoder_blocks=1,
    encoder_conf=dict(local_layers=1, window=4), decoder_blocks=1,
)  # fmt: skip

# Every encoder family (and rotary positions in the encoder and the decoder) at tiny sizes:
# settings that replace TINY_MODEL's.
ENCODERS = {
    "local_global": {},
    "local_global-rotary": dict(rotary=True, decoder_rotary=True),
    "conformer": dict(encoder="conformer", encoder_conf=dict(kernel=5)),
    "squeezeformer-post-norm": dict(
        encoder="squeezeformer", encoder_blocks=3, encoder_conf=dict(kernel=5, post_norm=True)
    ),
    "conv_transformer": dict(  # with the 2nd place's dense stem
        stem="dense",
        stem_conf={},
        encoder="conv_transformer",
        encoder_blocks=4,
        encoder_conf=dict(pattern="CTSC", kernel=5, expand=2),
    ),
    "squeezeformer-3-rotary": dict(
        encoder="squeezeformer",
        encoder_blocks=4,
        encoder_conf=dict(kernel=3, time_reduction=3),
        rotary=True,
        decoder_rotary=True,
    ),
}

# Seq2SeqTask's model settings for a tiny network on the 176 default columns.
TINY_TASK = dict(
    dim=32, heads=2, mlp_ratio=2, stem_conf=dict(blocks=1, kernel=5), encoder_blocks=1,
    encoder_conf=dict(local_layers=1, window=4), decoder_blocks=1, max_frames=24,
    max_target_len=8,
)  # fmt: skip


def tiny_args(data_dir, root_dir, *extra: str) -> list[str]:
    """``fit`` with configs/tiny.yaml on ``data_dir``, writing under ``root_dir``."""
    return [
        "fit", "--config", TINY, "--data.data_dir", str(data_dir),
        "--trainer.default_root_dir", str(root_dir), *extra,
    ]  # fmt: skip


def tiny_model(seed: int = 0, **overrides) -> Seq2Seq:
    """A :data:`TINY_MODEL` network (``overrides`` replace its settings), in eval mode."""
    torch.manual_seed(seed)
    return Seq2Seq(ModelConfig(**(TINY_MODEL | overrides))).eval()


def landmark_batch(b: int = 2, t: int = 20, c: int = 12, seed: int = 0) -> torch.Tensor:
    """(B, T, C) raw frames in [0, 1): some landmarks unseen at frame 3, nothing seen at frame 7
    of row 0."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, t, c, generator=g)
    x[:, 3, :4] = float("nan")
    x[0, 7] = float("nan")
    return x


def tiny_net(seed: int = 0, **overrides) -> Seq2Seq:
    """A :data:`ONE_BLOCK` network reading :data:`COLUMNS` (``overrides`` replace its settings),
    its norms set as after training (scale and shift away from 1 and 0, batch norm statistics
    away from 0 and 1), so that folding them into the deployment graph is tested."""
    net = tiny_model(seed, **(ONE_BLOCK | overrides))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.LayerNorm | torch.nn.BatchNorm1d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    return net


def tiny_ctc_net(**overrides) -> Seq2Seq:
    """:func:`tiny_net` with a CTC head (its weights: a new head's)."""
    net = tiny_net(**overrides)
    with_head = Seq2Seq(replace(net.config, ctc_head=True)).eval()
    with_head.load_state_dict(net.state_dict(), strict=False)  # the trained-like norms
    return with_head


def tie_tokens(net: Seq2Seq, lift: float = 1.0) -> Seq2Seq:
    """``net`` with four pairs of characters whose decoder head rows are equal (equal logits at
    every step) and raised by ``lift``: the beam search meets exact ties at every step."""
    head = net.decoder.head
    with torch.no_grad():
        for a, b in ((5, 6), (7, 8), (9, 10), (11, 12)):
            head.weight[b] = head.weight[a]
            head.bias[a] += lift
            head.bias[b] = head.bias[a]
    return net


FALLBACK_PHRASE = "e a-1"


def tiny_fallback_net(frames: int = 0, confidence: float = 0.0, ctc: bool = False) -> Seq2Seq:
    """:func:`tiny_net`'s weights with a confidence head (new) and the fallback rules
    (:mod:`aslfs_pl.model.fallback`), its phrase :data:`FALLBACK_PHRASE`."""
    net = tiny_net()
    config = replace(
        net.config,
        ctc_head=ctc,
        confidence_head=True,
        fallback_phrase=FALLBACK_PHRASE,
        fallback_frames=frames,
        fallback_confidence=confidence,
    )
    out = Seq2Seq(config).eval()
    out.load_state_dict(net.state_dict(), strict=False)  # the trained-like norms
    return out


def nan_frames(t: int, seed: int = 0) -> np.ndarray:
    """(T, 12) Kaggle-like input of :data:`COLUMNS`: ~20% of frames empty, ~30% missing a point."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.8, (t, 12)).astype(np.float32)
    x[rng.random(t) < 0.2] = np.nan
    x[rng.random(t) < 0.3, :3] = np.nan
    return x


def write_mini_dataset(
    root: Path,
    sequences: dict[str, list[tuple[int, int, str, np.ndarray]]],
    columns: list[str] | None = None,
) -> Path:
    """Write a hand-made Kaggle-layout dataset.

    Args:
        root: dataset root.
        sequences: parquet stem -> [(sequence_id, participant_id, phrase, frames (T, C))].
        columns: landmark columns written (default: the default LandmarkSet's).
    """
    columns = columns or LandmarkSet().selected_columns
    (root / "train_landmarks").mkdir(parents=True, exist_ok=True)
    rows = []
    for stem, seqs in sequences.items():
        ids, frames_col, data = [], [], []
        for sid, pid, phrase, frames in seqs:
            rows.append((f"train_landmarks/{stem}.parquet", stem, sid, pid, phrase))
            ids += [sid] * len(frames)
            frames_col += list(range(len(frames)))
            data.append(frames.reshape(len(frames), -1))
        arr = np.concatenate(data) if data else np.zeros((0, len(columns)), np.float32)
        table = pa.table(
            {"sequence_id": pa.array(ids, pa.int64()), "frame": pa.array(frames_col, pa.int16())}
            | {c: pa.array(arr[:, j], pa.float32()) for j, c in enumerate(columns)}
        )
        pq.write_table(table, root / "train_landmarks" / f"{stem}.parquet")
    with open(root / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "file_id", "sequence_id", "participant_id", "phrase"])
        w.writerows(rows)
    return root


def random_frames(rng: np.random.Generator, t: int, c: int | None = None) -> np.ndarray:
    c = c or LandmarkSet().num_columns
    return rng.uniform(0.2, 0.8, size=(t, c)).astype(np.float32)


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
    """Records the graphs torch-xla has compiled (misses of its graph cache, ``UncachedCompile``)
    after every training batch, and the device-to-host transfers so far
    (``TransferFromDeviceTime`` samples; ``aten::_local_scalar_dense`` calls, i.e. ``.item()`` /
    ``bool()`` / ``int()`` of a device tensor); and for every validation run (the sanity check
    included) the graphs it compiled and all its compilations (``CompileTime``: on a mesh these
    also count the runtime's reassembly of each sharded result copied to the host,
    docs/scaling.md)."""

    def __init__(self):
        self.counts: list[int] = []
        self.transfers: list[int] = []
        self.scalars: list[int] = []
        self.shapes: set[int] = set()  # the frame axes of the training batches
        self.val_graphs: list[int] = []
        self.val_compiles: list[int] = []

    @staticmethod
    def _now() -> tuple[int, int]:
        """(graphs compiled, compilations) so far, after the pending operations ran."""
        import torch_xla
        import torch_xla.debug.metrics as met

        torch_xla.sync()
        data = met.metric_data("CompileTime")
        return int(met.counter_value("UncachedCompile") or 0), 0 if data is None else int(data[0])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        import torch_xla.debug.metrics as met

        self.shapes.add(int(batch["landmarks"].shape[1]))
        self.counts.append(self._now()[0])
        moved = met.metric_data("TransferFromDeviceTime")
        self.transfers.append(0 if moved is None else int(moved[0]))
        self.scalars.append(int(met.counter_value("aten::_local_scalar_dense") or 0))

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_start = self._now()

    def on_validation_end(self, trainer, pl_module) -> None:
        (graphs, compiles), (graphs_0, compiles_0) = self._now(), self._val_start
        self.val_graphs.append(graphs - graphs_0)
        self.val_compiles.append(compiles - compiles_0)


def assert_graphs_per_bucket_shape(
    counts: list[int], steps: int, epochs: int, first_epoch_graphs: int
) -> None:
    """Compile counts after each training step (:class:`CountCompilations`) of a run with two
    length buckets and no Lookahead: each kind of step compiles once per shape, when that pair
    first occurs. The first step of an epoch (after validation and the epoch's buffer resets) is
    a kind of its own, so a shape first seen there in a later epoch compiles one graph then;
    inside an epoch, after the first two, nothing new is compiled."""
    report = ",".join(map(str, counts))
    assert len(counts) == steps * epochs, report
    assert counts[steps - 1] - counts[0] <= first_epoch_graphs, report
    for epoch in range(2, epochs):
        first = epoch * steps
        assert counts[first] - counts[first - 1] <= 1, report
        assert counts[first + steps - 1] == counts[first], report


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
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT), **env),
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return {**json.loads(line[len("RESULT ") :]), "stdout": proc.stdout[-3000:]}


def run_script(*args: str, stderr: bool = False) -> str:
    """Runs ``python <args>`` (e.g. ``scripts/x.py --flag``) from the repository root, as a user
    would; asserts it succeeds and returns its stdout (and its stderr after it, ``stderr``)."""
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + (proc.stderr if stderr else "")
