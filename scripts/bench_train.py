"""Training-step throughput on this machine's CPU for given configs.

    python scripts/bench_train.py [--configs configs/tiny.yaml configs/seed.yaml] [--steps 5]

For each config: builds the task and data module through the training CLI's parser (as
scripts/fit.py does), feeds random landmark batches of the config's batch size and max_frames,
and times forward + backward + optimiser steps (after 2 warm-up steps). Prints steps/s and
sequences/s.
"""

from __future__ import annotations

import argparse
import time

import torch

from aslfs_pl import vocab
from aslfs_pl.optim import Lookahead
from aslfs_pl.trained import from_config


def bench(path: str, steps: int, batch_size: int | None) -> None:
    built = from_config(["--config", path])
    task, dm = built.task, built.datamodule
    frames, tgt, cols = dm.max_frames, dm.max_target_len, dm.num_columns
    bs = batch_size or dm.batch_size
    task.train()
    opt = Lookahead(torch.optim.RAdam(task.parameters(), lr=1e-4, decoupled_weight_decay=True))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(bs, frames, cols, generator=g)
    x[:, frames * 2 // 5 :] = float("nan")  # ~40% padding, like real lengths at max_frames 384
    tokens = torch.randint(0, vocab.NUM_CHARACTERS, (bs, tgt + 1), generator=g)
    tokens[:, 0] = vocab.SOS
    batch = {"landmarks": x, "tokens": tokens}

    def step() -> None:
        loss, _, _ = task._loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    params = task.net.num_parameters()
    print(f"{path}: {params / 1e6:.2f}M params, batch {bs} x {frames} frames: "
          f"{1 / dt:.2f} steps/s, {bs / dt:.1f} sequences/s")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["configs/tiny.yaml", "configs/seed.yaml"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch_size", type=int, default=None, help="override the configs' batch size")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for path in args.configs:
        bench(path, args.steps, args.batch_size)


if __name__ == "__main__":
    main()
