"""Latency of the exported TFLite model on this CPU, against its FLOP floor and PyTorch.

    python scripts/bench_export.py --config configs/seed.yaml [--sequences 40] [--out artifacts/bench]
    python scripts/bench_export.py --ckpt runs/quickstart/checkpoints/last.ckpt ...

One run measures, on one thread and the same inputs:
- the TFLite model (fp16 weights, as submitted): median / p90 ms per sequence over lengths drawn
  like Kaggle's (lognormal, mean ~160 frames, clipped to 1..807, plus one 807-frame sequence);
- the floor: the graph's FLOPs (torch's FlopCounterMode on the export wrapper; the static graph
  does the same work at every length) over this machine's single-thread matmul rate;
- the PyTorch model decoding greedily WITHOUT a KV cache (the decoder re-run on the whole prefix
  at every step), the baseline the export's KV-cache decoder is compared with;
- the file sizes of fp32 and fp16 conversions.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from aslfs_pl import vocab
from aslfs_pl.data.features import fit_length
from aslfs_pl.export import (
    KaggleModel,
    TFLiteRunner,
    convert,
    load_checkpoint,
    model_from_config,
)


def kaggle_lengths(n: int, rng: np.random.Generator) -> np.ndarray:
    """Frame counts shaped like Kaggle's (mean ~160, median ~148, max 807)."""
    lengths = np.clip(rng.lognormal(np.log(148), 0.45, n).astype(int), 1, 807)
    lengths[0] = 807
    return lengths


def inputs_for(lengths: np.ndarray, columns: int, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for t in lengths:
        x = rng.uniform(0.2, 0.8, (t, columns)).astype(np.float32)
        x[rng.random(t) < 0.3, : columns // 4] = np.nan  # a hand missing in some frames
        out.append(x)
    return out


def matmul_gflops(seconds: float = 2.0) -> float:
    """Single-thread float32 matmul rate, at shapes like the model's linear layers."""
    a, b = torch.randn(384, 256), torch.randn(256, 1024)
    for _ in range(5):
        a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * 384 * 256 * 1024 * n / (time.perf_counter() - t0) / 1e9


def greedy_without_cache(net, x: torch.Tensor) -> list[int]:
    """Greedy decoding that re-runs the decoder on the whole prefix at every step."""
    memory, valid = net.encode(x)
    tokens = torch.full((1, 1), vocab.SOS, dtype=torch.long)
    for _ in range(net.config.max_target_len):
        logits = net.decoder(tokens, memory, valid)[:, -1]
        tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], 1)
    return tokens[0, 1:].tolist()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config")
    src.add_argument("--ckpt")
    p.add_argument("--sequences", type=int, default=40)
    p.add_argument("--out", default="artifacts/bench")
    p.add_argument("--skip_fp32", action="store_true", help="skip the fp32 conversion")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    if args.ckpt:
        trained = load_checkpoint(args.ckpt)
        net, columns = trained.net, trained.landmarks.selected_columns
    else:
        net, landmarks = model_from_config(args.config)
        columns = landmarks.selected_columns
    c = len(columns)
    print(f"model: {net.num_parameters() / 1e6:.2f}M parameters, max_frames "
          f"{net.config.max_frames}, {net.config.max_target_len} decoder steps")  # fmt: skip

    out = Path(args.out)
    t0 = time.perf_counter()
    fp16 = convert(net, columns, out / "fp16", fp16=True)
    print(f"conversion (fp16): {time.perf_counter() - t0:.0f}s")
    sizes = {"fp16": fp16.size_bytes}
    if not args.skip_fp32:
        sizes["fp32"] = convert(net, columns, out / "fp32", fp16=False).size_bytes
    print("file size: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))

    rng = np.random.default_rng(0)
    lengths = kaggle_lengths(args.sequences, rng)
    xs = inputs_for(lengths, c, rng)
    print(f"lengths: mean {lengths.mean():.0f}, median {np.median(lengths):.0f}, "
          f"max {lengths.max()}")  # fmt: skip

    runner = TFLiteRunner(fp16.model_path, num_threads=1)
    runner.outputs(xs[1])  # warm-up
    tfl = []
    for x in xs:
        t = time.perf_counter()
        runner.outputs(x)
        tfl.append(time.perf_counter() - t)
    tfl = np.array(tfl) * 1000

    wrapper = KaggleModel(net).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        wrapper(torch.from_numpy(xs[1]))
    gflop = counter.get_total_flops() / 1e9
    rate = matmul_gflops()
    floor_ms = gflop / rate * 1000

    ref = []
    with torch.no_grad():
        for x in xs:
            xt = torch.from_numpy(fit_length(x[:1024], net.config.max_frames))[None]
            t = time.perf_counter()
            greedy_without_cache(net, xt)
            ref.append(time.perf_counter() - t)
    ref = np.array(ref) * 1000

    print(f"TFLite fp16, 1 thread: median {np.median(tfl):.1f} ms, p90 "
          f"{np.percentile(tfl, 90):.1f} ms per sequence")  # fmt: skip
    print(f"FLOP floor: {gflop:.2f} GFLOP per sequence at {rate:.1f} GFLOP/s (1-thread matmul) "
          f"= {floor_ms:.1f} ms; median / floor = {np.median(tfl) / floor_ms:.2f}x")  # fmt: skip
    print(f"PyTorch greedy without KV cache, 1 thread: median {np.median(ref):.1f} ms; "
          f"TFLite speed-up {np.median(ref) / np.median(tfl):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
