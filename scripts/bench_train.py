"""Training throughput as the Trainer runs it: sequences/s, real frames/s and model FLOP
utilisation (MFU), optionally side by side with a baseline in the same process.

    python scripts/bench_train.py --config configs/quickstart.yaml [--data random|real|kaggle]
        [--steps 20] [--warmup 5] [--compile] [--peak_tflops X] [--loader_batches 30]
        [--profile [STEPS]] [--against "--data.buckets []"] [--processes N]
        [--baseline_tree DIR]
        [any training CLI argument: --accelerator gpu --trainer.precision bf16-mixed ...]
    # where the seed's step goes, operator by operator, against the code of another commit
    # (a git worktree) measured in the same run
    git worktree add /tmp/main main
    python scripts/bench_train.py --config configs/seed.yaml --data kaggle --steps 6 \
        --warmup 2 --trainer.max_epochs 100 --data.num_workers 1 --data.batch_size 32 \
        --profile 1 --baseline_tree /tmp/main --processes 2
    # length bucketing against one fixed length, the seed's shapes, Kaggle-like lengths
    python scripts/bench_train.py --config configs/seed.yaml --data kaggle --steps 10 \\
        --warmup 3 --trainer.max_epochs 100 --against "--data.buckets []"
    # the TPU route rehearsed: SPMD over 8 XLA CPU devices against one, the same 32-row batches,
    # each run in its own process (an XLA runtime's device count is fixed per process), 3 times
    python scripts/bench_train.py --config configs/quickstart.yaml --data random --steps 10 \\
        --warmup 12 --processes 3 --xla_cpu_devices 8 --data.batch_size 4 \\
        --against "--xla_cpu_devices 1 --data.batch_size 32"
    # one H100/H200, the seed at its batch size, bf16-mixed, buckets on and off, with the
    # profile (the fused attention kernels' share of the GPU's time)
    python scripts/bench_train.py --config configs/seed.yaml --accelerator gpu \\
        --trainer.precision bf16-mixed --data kaggle --steps 50 --warmup 10 \\
        --trainer.max_epochs 100 --profile 3 --against "--data.buckets []"

Runs ``fit`` through the training CLI (the config's optimiser, schedule, precision, accelerator,
gradient clipping and callbacks) without validation for ``warmup + steps`` optimiser steps; a
callback times the ``steps`` after the warm-up, waiting for the device at both ends. ``--data
random`` feeds the same few random batches of the config's shapes (the step alone); ``--data
real`` the data module's own loader (the step as fed by its workers, bucketed as configured);
``--data kaggle`` the same on ``--sequences`` random sequences whose lengths are drawn like
Kaggle's (lognormal, median ~148 frames, up to 807; as ``scripts/bench_export.py`` draws them),
written to a temporary Kaggle-layout folder first. Prints:

- step time, sequences/s (batch x replicas), real frames/s and the fraction of the frames fed to
  the model that are real (not padding; a sequence longer than ``max_frames`` counts
  ``max_frames``);
- the model's FLOPs (forward + backward of the training loss, torch's FlopCounterMode on the
  CPU, as a quadratic in the frame count fitted exactly at three lengths) and MFU: the achieved
  FLOP rate over the device's peak (``--peak_tflops``; else a table of known GPUs' dense bf16
  peaks; on a CPU this machine's measured fp32 matmul rate), counted twice: at the padded shapes
  the batches had (what the device computed) and at each sequence's own length (useful work);
- with ``--against ARGS``: the same for a baseline run with ARGS added (e.g. ``"--data.buckets
  []"``, one fixed length), then the ratios; with ``--processes N`` each run is measured N times,
  each time in a fresh process, the two alternating, and each one's median is reported (for runs
  that differ in the XLA runtime, which is fixed per process: ``--xla_cpu_devices``);
- with ``--data real``: the loader alone (``--loader_batches`` batches): sequences/s per worker,
  and how many workers the measured step rate needs;
- with ``--profile [STEPS]`` (2 steps if no number), after the timed steps: the self time of
  every operator of STEPS steps (torch.profiler; the GPU's time on CUDA) summed by group (matrix
  products, fused attention kernels, convolutions, dropout masks' random draws, copies, softmax,
  norms, other elementwise operators, Python and autograd), each group's largest operators, the
  share of matmuls + fused attention, and the share of the step that clipping and the
  optimiser's update take (:mod:`aslfs_pl.bench.profile`). Measure on a quiet machine: other
  work inflates the memory-bound operators most. Not on an XLA device (its operators run in
  compiled graphs; docs/benchmarks.md says how to profile there);
- with ``--baseline_tree DIR``: the baseline is run by DIR's own copy of this script with DIR's
  package (a git worktree of another commit), in fresh processes, with ``--against``'s arguments
  if given: a ratio against another commit's code in one run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from lightning.pytorch import Callback
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import DataLoader, IterableDataset
from torch.utils.flop_counter import FlopCounterMode

from aslfs_pl import cli, vocab
from aslfs_pl.bench.profile import StepProfile

#: Dense bf16 peak, TFLOP/s, by a substring of torch.cuda.get_device_name().
GPU_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}


def sync(device: torch.device) -> None:
    """Wait until the device has run everything queued."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "xla":
        import torch_xla.core.xla_model as xm

        xm.wait_device_ops()


class StepTimer(Callback):
    """Wall-clock time of the optimiser steps ``warmup`` .. ``warmup + steps``, and the frames of
    the batches they trained on."""

    def __init__(self, warmup: int, steps: int, max_frames: int):
        self.warmup, self.steps, self.max_frames = warmup, steps, max_frames
        self.start = self.seconds = None
        self.padded: list[int] = []  # each timed batch's frame axis
        self._frames: list[torch.Tensor] = []  # each timed batch's num_frames, on its device

    @property
    def lengths(self) -> list[int]:
        """Each timed sequence's frames (at most max_frames), read after the timing: a copy to
        the host inside a step would wait for the device (and on a mesh compile a graph)."""
        return [min(int(n), self.max_frames) for t in self._frames for n in t.cpu().tolist()]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup and self.start is None:
            sync(pl_module.device)
            self.start = time.perf_counter()
        if self.start is not None and self.seconds is None:
            b, f = batch["landmarks"].shape[:2]
            self.padded += [f] * b
            self._frames.append(batch["num_frames"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup + self.steps and self.seconds is None:
            sync(pl_module.device)
            self.seconds = time.perf_counter() - self.start


class RandomBatches(IterableDataset):
    """A few random batches of the data module's shapes, repeated (frames ~40% padding). A batch
    has ``rows()`` rows (the data module's batch size by default), asked when the loader first
    iterates: after the strategy has its devices (a mesh's batch is per device x devices)."""

    def __init__(self, dm, count: int = 4, frames: int | None = None, rows=None):
        self.dm, self.count, self.frames = dm, count, frames or dm.max_frames
        self.rows = rows or (lambda: dm.batch_size)
        self.batches: list[dict[str, torch.Tensor]] = []

    def _make(self) -> None:
        g = torch.Generator().manual_seed(0)
        b, c, t, f = self.rows(), self.dm.num_columns, self.dm.max_target_len, self.frames
        for _ in range(self.count):
            x = torch.rand(b, f, c, generator=g)
            x[:, f * 3 // 5 :] = float("nan")
            tokens = torch.randint(0, vocab.NUM_CHARACTERS, (b, t + 1), generator=g)
            tokens[:, 0] = vocab.SOS
            tokens[:, t // 2 :] = vocab.PAD
            tokens[:, t // 2] = vocab.EOS
            frames = torch.full((b,), f * 3 // 5)
            ids = torch.arange(b)
            self.batches.append(
                {"landmarks": x, "tokens": tokens, "num_frames": frames, "sequence_id": ids}
            )

    def __iter__(self):
        if not self.batches:
            self._make()
        while True:
            yield from self.batches


def devices(trainer) -> int:
    """Devices one process's batch is split over: the SPMD strategy's mesh, else 1 (as the data
    module's ``rows()`` counts them)."""
    return getattr(trainer.strategy, "data_parallel_size", 1)


def flops_per_sequence(task, dm) -> np.poly1d:
    """Forward + backward FLOPs of the training loss for one sequence of T frames, as a
    polynomial in T: counted on the CPU (batches of 2, every frame real) at three lengths and
    fitted exactly (every layer is linear in T but global attention, which is quadratic)."""
    task = task.cpu().train()
    lengths = sorted({max(1, dm.max_frames // 4), max(2, dm.max_frames // 2), dm.max_frames})
    counts = []
    for t in lengths:
        batch = next(iter(RandomBatches(dm, 1, frames=t)))
        two = {k: v[:2] for k, v in batch.items()}
        two["landmarks"] = torch.nan_to_num(two["landmarks"], nan=0.5)
        # the math backend: the counter has no formula for the CPU's fused kernel
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            loss, _, _ = task._loss(two)
            loss.backward()
        task.zero_grad(set_to_none=True)
        counts.append(counter.get_total_flops() / 2)
    return np.poly1d(np.polyfit(lengths, counts, min(2, len(lengths) - 1)))


def cpu_matmul_tflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e12


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def peak_tflops(device: torch.device, given: float | None) -> tuple[float | None, str]:
    if given:
        return given, "--peak_tflops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in GPU_PEAK_TFLOPS.items():
            if key in name:
                return value, f"{name}, dense bf16"
        return None, f"{name}: unknown peak (give --peak_tflops)"
    if device.type == "cpu":
        return (
            cpu_matmul_tflops(),
            f"this CPU's fp32 matmul rate, {torch.get_num_threads()} threads",
        )
    return None, f"{device.type}: unknown peak (give --peak_tflops)"


def loader_rate(dm, batches: int) -> tuple[float, int]:
    """Sequences/s of the training stream through its DataLoader, and its worker count."""
    workers = max(1, dm.num_workers)
    loader = DataLoader(dm.train_set, batch_size=None, num_workers=dm.num_workers)
    it = iter(loader)
    next(it)  # workers started, first files open
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            n += len(next(it)["sequence_id"])
        except StopIteration:
            break
    return n / (time.perf_counter() - t0), workers


def kaggle_lengths(n: int, rng: np.random.Generator) -> np.ndarray:
    """Frame counts shaped like Kaggle's (median ~148, up to 807; as bench_export.py draws)."""
    return np.clip(rng.lognormal(np.log(148), 0.45, n).astype(int), 1, 807)


def write_length_dataset(root: Path, columns: list[str], n: int, max_chars: int) -> None:
    """``n`` random sequences of Kaggle-like lengths in Kaggle's layout under ``root``."""
    rng = np.random.default_rng(0)
    lengths = kaggle_lengths(n, rng)
    (root / "train_landmarks").mkdir(parents=True)
    rows = []
    for start in range(0, n, 256):
        part = lengths[start : start + 256]
        ids = np.repeat(np.arange(start, start + len(part)), part)
        frame = np.concatenate([np.arange(t) for t in part])
        values = rng.uniform(0.2, 0.8, (len(ids), len(columns))).astype(np.float32)
        table = pa.table(
            {"sequence_id": pa.array(ids, pa.int64()), "frame": pa.array(frame, pa.int16())}
            | {c: pa.array(values[:, j]) for j, c in enumerate(columns)}
        )
        name = f"train_landmarks/{start}.parquet"
        pq.write_table(table, root / name)
        for sid, t in zip(range(start, start + len(part)), part, strict=True):
            chars = "".join(rng.choice(list("abcdefghij"), int(np.clip(t // 6, 1, max_chars))))
            rows.append((name, start, sid, sid % 20, chars))
    with open(root / "train.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "file_id", "sequence_id", "participant_id", "phrase"])
        writer.writerows(rows)


def measure(args: argparse.Namespace, fit_args: list[str], root: str) -> dict:
    """One timed fit (see the module doc); its rates, frames and FLOPs."""
    built = cli.main(
        [
            "fit",
            *fit_args,
            *["--trainer.max_steps", str(args.warmup + args.steps + args.profile)],
            *["--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0"],
            *["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"],
            *["--trainer.default_root_dir", root],
        ],
        run=False,
    )
    task, dm, trainer = built.model, built.datamodule, built.trainer
    timer = StepTimer(args.warmup, args.steps, dm.max_frames)
    trainer.callbacks.append(timer)
    profiler = StepProfile(args.warmup + args.steps, args.profile)
    if args.profile:
        trainer.callbacks.append(profiler)
    if args.data == "kaggle":
        data = Path(root) / "kaggle_lengths"
        write_length_dataset(data, dm.selected_columns, args.sequences, dm.max_target_len - 1)
        dm.data_dir = str(data)
    if args.compile:
        task.net.forward_train = torch.compile(task.net.forward_train)
    if args.data == "random":
        rows = RandomBatches(dm, rows=lambda: dm.batch_size * devices(trainer))
        trainer.fit(task, train_dataloaders=DataLoader(rows, batch_size=None))
    else:
        trainer.fit(task, datamodule=dm)
    if timer.seconds is None:
        raise SystemExit("the run ended before the timed steps (an epoch shorter than them?)")
    # after the fit: a backward on the CPU before an XLA device exists leaves torch's autograd
    # engine without queues for it
    flops = flops_per_sequence(task, dm)
    device = trainer.strategy.root_device
    replicas = trainer.world_size
    padded, lengths = np.array(timer.padded), np.array(timer.lengths)
    out = {
        "device": device,
        "replicas": replicas,
        "mesh": devices(trainer),
        "precision": trainer.precision,
        "parameters": task.net.num_parameters(),
        "batch": dm.batch_size,
        "max_frames": dm.max_frames,
        "buckets": dm.buckets,
        "step": timer.seconds / args.steps,
        "sequences": len(lengths) * replicas / timer.seconds,
        "real_frames": lengths.sum() * replicas / timer.seconds,
        "real_fraction": lengths.sum() / padded.sum(),
        "tflops_padded": flops(padded).sum() * replicas / timer.seconds / 1e12,
        "tflops_own": flops(lengths).sum() * replicas / timer.seconds / 1e12,
        "gflop_per_sequence": flops(dm.max_frames) / 1e9,
    }
    if args.data != "random":
        out["loader"], out["workers"] = loader_rate(dm, args.loader_batches)
    if profiler.result is not None:
        out["profile"] = profiler.result.lines()
    return out


def measure_in_processes(args: argparse.Namespace, runs: dict[str, list[str]]) -> dict:
    """Each run measured ``args.processes`` times, each time in a fresh process, the runs
    alternating (a slow spell of the machine hits both); each run's median by sequences/s."""
    own = [
        *["--data", args.data, "--sequences", str(args.sequences), "--steps", str(args.steps)],
        *["--warmup", str(args.warmup), "--loader_batches", str(args.loader_batches)],
        *(["--compile"] if args.compile else []),
    ]
    seen: dict[str, list[dict]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "measured.json"
        for _ in range(args.processes):
            for name, run_args in runs.items():
                script, env, extra = __file__, None, ["--profile", str(args.profile)]
                if name == "baseline" and args.baseline_tree:  # that checkout's code and script
                    tree = Path(args.baseline_tree).resolve()
                    script, extra = str(tree / "scripts" / "bench_train.py"), []
                    env = {**os.environ, "PYTHONPATH": str(tree)}
                cmd = [sys.executable, script, *own, *extra, "--json", str(out), *run_args]
                if subprocess.run(cmd, env=env).returncode:
                    raise SystemExit(f"the {name} run failed: {shlex.join(cmd)}")
                seen[name].append(json.loads(out.read_text()))
    picked = {}
    for name, ms in seen.items():
        ms = sorted(ms, key=lambda m: m["sequences"])
        rates = ", ".join(f"{m['sequences']:.1f}" for m in ms)
        print(f"{name}: sequences/s in {len(ms)} processes: {rates}")
        picked[name] = ms[(len(ms) - 1) // 2] | {"device": torch.device(ms[0]["device"])}
    return picked


def report(name: str, m: dict, peak: float | None, source: str, compiled: bool) -> None:
    def mfu(tflops: float) -> str:
        return f"{tflops / peak:.1%}" if peak else "n/a"

    mesh, per = (f" (SPMD over {m['mesh']} devices)", " a device") if m["mesh"] > 1 else ("", "")
    print(
        f"{name}: device {m['device']} x {m['replicas']}{mesh}, precision {m['precision']}"
        f"{', compiled' if compiled else ''}; {m['parameters'] / 1e6:.2f}M parameters, batch "
        f"{m['batch']}{per}, max_frames {m['max_frames']}, {len(m['buckets'])} bucket(s) "
        f"{list(m['buckets'])}"
    )
    print(
        f"  step {m['step'] * 1000:.1f} ms: {m['sequences']:.1f} sequences/s, "
        f"{m['real_frames']:.0f} real frames/s, real-frame fraction {m['real_fraction']:.3f}"
    )
    print(
        f"  {m['gflop_per_sequence']:.2f} GFLOP per {m['max_frames']}-frame sequence; "
        f"{m['tflops_padded']:.3f} TFLOP/s at the padded shapes (MFU {mfu(m['tflops_padded'])}), "
        f"{m['tflops_own']:.3f} at each sequence's own length (MFU {mfu(m['tflops_own'])}); "
        f"peak: {f'{peak:.3g} TFLOP/s, ' if peak else ''}{source}"
    )
    for line in m.get("profile", []):
        print(line)
    if "loader" in m:
        per_worker = m["loader"] / m["workers"]
        print(
            f"  loader alone: {m['loader']:.1f} sequences/s with {m['workers']} worker(s) = "
            f"{per_worker:.1f} per worker; this step rate needs "
            f"{m['sequences'] / m['replicas'] / per_worker:.1f} workers per replica"
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", choices=("random", "real", "kaggle"), default="random")
    p.add_argument("--sequences", type=int, default=2048, help="--data kaggle: how many")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="torch.compile the training forward")
    p.add_argument("--peak_tflops", type=float, default=None)
    p.add_argument("--loader_batches", type=int, default=30)
    p.add_argument(
        "--against",
        default=None,
        help="training arguments of a baseline measured in the same process, e.g. "
        '"--data.buckets []"',
    )
    p.add_argument(
        "--processes",
        type=int,
        default=0,
        help="measure each run in a fresh process, alternating, this many times each, and "
        "report each one's median: for runs that differ in the XLA runtime (--xla_cpu_devices)",
    )
    p.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=2,
        default=0,
        help="profile this many optimiser steps after the timed ones (2 if no number) and print "
        "the self time by operator group, the matmul share and the optimiser's share",
    )
    p.add_argument(
        "--baseline_tree",
        default=None,
        help="the baseline runs another checkout's code (e.g. a git worktree of main), in fresh "
        "processes (--processes, 1 if not given), with --against's arguments if any",
    )
    p.add_argument("--json", default=None, help=argparse.SUPPRESS)  # a child's measurement
    args, fit_args = p.parse_known_args(argv)
    if args.json:
        with tempfile.TemporaryDirectory() as root:
            m = measure(args, fit_args, root)
        m["device"] = str(m["device"])
        Path(args.json).write_text(json.dumps(m, default=lambda x: x.item()))  # numpy scalars
        return
    runs = {"run": fit_args}
    if args.against is not None or args.baseline_tree:
        against = shlex.split(args.against or "")
        runs = {"baseline": [*fit_args, *against], "run": fit_args}
        if args.baseline_tree:
            args.processes = max(args.processes, 1)
    measured = {}
    if args.processes:
        measured = measure_in_processes(args, runs)
    else:
        for name, run_args in runs.items():
            with tempfile.TemporaryDirectory() as root:
                measured[name] = measure(args, run_args, root)
    peak, source = peak_tflops(measured["run"]["device"], args.peak_tflops)
    for name, m in measured.items():
        report(name, m, peak, source, args.compile)
    if "baseline" in measured:
        base, run = measured["baseline"], measured["run"]
        print(
            f"run / baseline: sequences/s x{run['sequences'] / base['sequences']:.2f}, real "
            f"frames/s x{run['real_frames'] / base['real_frames']:.2f}, real-frame fraction "
            f"{base['real_fraction']:.3f} -> {run['real_fraction']:.3f}"
        )


if __name__ == "__main__":
    main()
