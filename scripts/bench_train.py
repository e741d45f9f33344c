"""Training throughput as the Trainer runs it: sequences/s and model FLOP utilisation (MFU).

    python scripts/bench_train.py --config configs/quickstart.yaml [--data random|real]
        [--steps 20] [--warmup 5] [--compile] [--peak_tflops X] [--loader_batches 30]
        [any training CLI argument: --accelerator gpu --trainer.precision bf16-mixed ...]
    # one H100/H200, the seed at its batch size, bf16-mixed (the GPU check of the accelerator issue)
    python scripts/bench_train.py --config configs/seed.yaml --accelerator gpu \\
        --trainer.precision bf16-mixed --data random --steps 50

Runs ``fit`` through the training CLI (the config's optimiser, schedule, precision, accelerator,
gradient clipping and callbacks) without validation for ``warmup + steps`` optimiser steps; a
callback times the ``steps`` after the warm-up, waiting for the device at both ends. ``--data
random`` feeds the same few random batches of the config's shapes (the step alone); ``--data
real`` the data module's own loader (the step as fed by its workers). Prints:

- step time and sequences/s (batch x replicas);
- the model's FLOPs per sequence (forward + backward of the training loss, torch's
  FlopCounterMode at the config's shapes, on the CPU) and MFU: the achieved FLOP rate over the
  device's peak (``--peak_tflops``; else a table of known GPUs' dense bf16 peaks; on a CPU this
  machine's measured fp32 matmul rate);
- with ``--data real``: the loader alone (``--loader_batches`` batches): sequences/s per worker,
  and how many workers the measured step rate needs.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from lightning.pytorch import Callback
from torch.utils.data import DataLoader, IterableDataset
from torch.utils.flop_counter import FlopCounterMode

from aslfs_pl import cli, vocab

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
    """Wall-clock time of the optimiser steps ``warmup`` .. ``warmup + steps``."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps = warmup, steps
        self.start = self.seconds = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup and self.start is None:
            sync(pl_module.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup + self.steps and self.seconds is None:
            sync(pl_module.device)
            self.seconds = time.perf_counter() - self.start


class RandomBatches(IterableDataset):
    """A few random batches of the data module's shapes, repeated (frames ~40% padding)."""

    def __init__(self, dm, count: int = 4):
        g = torch.Generator().manual_seed(0)
        b, f, c, t = dm.batch_size, dm.max_frames, dm.num_columns, dm.max_target_len
        self.batches = []
        for _ in range(count):
            x = torch.rand(b, f, c, generator=g)
            x[:, f * 3 // 5 :] = float("nan")
            tokens = torch.randint(0, vocab.NUM_CHARACTERS, (b, t + 1), generator=g)
            tokens[:, 0] = vocab.SOS
            tokens[:, t // 2 :] = vocab.PAD
            tokens[:, t // 2] = vocab.EOS
            self.batches.append({"landmarks": x, "tokens": tokens})

    def __iter__(self):
        while True:
            yield from self.batches


def flops_per_sequence(task, batch: dict) -> float:
    """Forward + backward FLOPs of the training loss per sequence (2 sequences, on the CPU)."""
    two = {k: v[:2] for k, v in batch.items()}
    task = task.cpu().train()
    with FlopCounterMode(display=False) as counter:
        loss, _, _ = task._loss(two)
        loss.backward()
    task.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", choices=("random", "real"), default="random")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="torch.compile the training forward")
    p.add_argument("--peak_tflops", type=float, default=None)
    p.add_argument("--loader_batches", type=int, default=30)
    args, fit_args = p.parse_known_args(argv)
    timer = StepTimer(args.warmup, args.steps)
    with tempfile.TemporaryDirectory() as root:
        built = cli.main(
            [
                "fit",
                *fit_args,
                "--trainer.max_steps",
                str(args.warmup + args.steps),
                "--trainer.limit_val_batches",
                "0",
                "--trainer.num_sanity_val_steps",
                "0",
                "--trainer.enable_progress_bar",
                "false",
                "--trainer.enable_model_summary",
                "false",
                "--trainer.default_root_dir",
                root,
            ],
            run=False,
            trainer_defaults={"callbacks": [timer]},
        )
        task, dm, trainer = built.model, built.datamodule, built.trainer
        per_sequence = flops_per_sequence(task, next(iter(RandomBatches(dm, 1))))
        if args.compile:
            task.net.forward_train = torch.compile(task.net.forward_train)
        if args.data == "real":
            trainer.fit(task, datamodule=dm)
        else:
            trainer.fit(task, train_dataloaders=DataLoader(RandomBatches(dm), batch_size=None))
    if timer.seconds is None:
        raise SystemExit("the run ended before the timed steps (an epoch shorter than them?)")
    device = trainer.strategy.root_device
    step = timer.seconds / args.steps
    replicas = trainer.world_size
    sequences = dm.batch_size * replicas / step
    achieved = per_sequence * sequences / 1e12
    peak, source = peak_tflops(device, args.peak_tflops)
    mfu = f"{achieved / peak:.1%} of {peak:.3g} TFLOP/s ({source})" if peak else source
    print(
        f"device {device} x {replicas}, precision {trainer.precision}, data {args.data}"
        f"{', compiled' if args.compile else ''}; {task.net.num_parameters() / 1e6:.2f}M "
        f"parameters, batch {dm.batch_size} x {dm.max_frames} frames per replica"
    )
    print(
        f"step {step * 1000:.1f} ms: {sequences:.1f} sequences/s; "
        f"{per_sequence / 1e9:.2f} GFLOP per sequence (forward + backward) = "
        f"{achieved:.3f} TFLOP/s; MFU {mfu}"
    )
    if args.data == "real":
        rate, workers = loader_rate(dm, args.loader_batches)
        print(
            f"loader alone: {rate:.1f} sequences/s with {workers} worker(s) = "
            f"{rate / workers:.1f} per worker; this step rate needs "
            f"{sequences / replicas / (rate / workers):.1f} workers per replica"
        )


if __name__ == "__main__":
    main()
