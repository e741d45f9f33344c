"""Conversion time and latency of the exported TFLite model on this CPU, against its FLOP floor
and PyTorch.

    python scripts/bench_export.py --config configs/seed.yaml [--model.dim 192 ...] [--sequences 40]
        [--weights fp16 fp32 int8] [--decodings attention ctc joint]
        [--baseline earlier/model.tflite ...]
    python scripts/bench_export.py --ckpt runs/quickstart/checkpoints/last.ckpt [--model.beam_width 8] ...

Without --ckpt, the other arguments are training CLI arguments (as scripts/fit.py reads them);
with it, --model.* settings replace the checkpoint's (its read-out, as aslfs-export takes them).
One run measures, on one thread and the same inputs (lengths drawn like Kaggle's: lognormal, mean
~160 frames, clipped to 1..807, plus one 807-frame sequence):
- the conversion of each weight type and decoding route (``ctc``, ``joint`` and ``beam`` need the CTC head,
  ``--model.ctc_weight``): total seconds and seconds per stage;
- each weight type's TFLite model (fp16 is the default submission), and any --baseline file (an
  earlier conversion, or another config's file, to compare in the same run; one that reads other
  landmark columns gets inputs of the same lengths with its own columns): median / p90
  ms per sequence; every model (and the PyTorch references) runs whole passes over the inputs,
  in rounds of alternating order, so drift of a shared machine hits all alike; each input's time
  is its best round (noise only adds time), and each round's median is printed too;
- the floor of each sequence: the FLOPs the network needs for it (torch's FlopCounterMode on
  ``Seq2Seq.generate`` -- chunked local attention, KV-cache decoder -- over the sequence's own
  frames, at most max_frames) divided by this machine's single-thread matmul rate (measured at
  the start of every round; the best one); the training path's ``max_frames`` work is printed
  too;
- the PyTorch model decoding greedily WITHOUT a KV cache (the decoder re-run on the whole prefix at
  every step), on the sequence's own frames and on the max_frames-padded input of the training
  path; the speed-up is reported against the faster of the two;
- the file size of each conversion.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from aslfs_pl import vocab
from aslfs_pl.deploy.convert import WEIGHTS, convert
from aslfs_pl.deploy.runtime import TFLiteRunner
from aslfs_pl.deploy.stages import ExportError
from aslfs_pl.model.decoding import DECODINGS
from aslfs_pl.model.features import fit_length
from aslfs_pl.trained import LoadError, from_arguments


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


def own_frames(x: np.ndarray, max_frames: int) -> torch.Tensor:
    """(1, n, C): the training path's input without its padding (n = min(T, F), at least 1)."""
    fitted = fit_length(x, max_frames)[: max(1, min(len(x), max_frames))]
    return torch.from_numpy(fitted)[None]


def timed(fn, xs) -> np.ndarray:
    """Milliseconds per call of ``fn`` on each input."""
    out = []
    for x in xs:
        t = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - t)
    return np.array(out) * 1000


def timed_in_rounds(fns: dict, rounds: int) -> tuple[dict[str, np.ndarray], list[float]]:
    """``fns``: name -> (function, its inputs). Milliseconds per call, shape (rounds, inputs), for
    each function, and the matmul rate measured at the start of each round. Each function takes
    whole passes over its inputs (as an evaluator runs one model); the order alternates between
    rounds so that drift of a shared machine hits all alike."""
    out, rates = {name: [] for name in fns}, []
    for r in range(rounds):
        rates.append(matmul_gflops())
        for name in list(fns) if r % 2 == 0 else reversed(fns):
            fn, inputs = fns[name]
            out[name].append(timed(fn, inputs))
    return {name: np.array(ms) for name, ms in out.items()}, rates


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter, allow_abbrev=False
    )
    p.add_argument("--ckpt", help="a training checkpoint (else: training CLI arguments)")
    p.add_argument("--sequences", type=int, default=40)
    p.add_argument("--out", default="artifacts/bench")
    p.add_argument(
        "--weights",
        nargs="*",
        choices=WEIGHTS,
        default=list(WEIGHTS),
        help="weight types to convert and time (none: time --baseline files only)",
    )
    p.add_argument(
        "--decodings",
        nargs="*",
        choices=list(DECODINGS),
        default=["attention"],
        help="TFLite routes to convert and time",
    )
    p.add_argument("--baseline", nargs="*", default=[], help="earlier .tflite files to time too")
    p.add_argument("--rounds", type=int, default=3, help="timing passes per model")
    args, config_args = p.parse_known_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    try:
        trained = from_arguments(p, args.ckpt, config_args)
        run(args, trained)
    except (ExportError, LoadError) as err:
        sys.exit(f"bench_export failed: {err}")


def run(args: argparse.Namespace, trained) -> None:
    net, columns = trained.net, trained.landmarks.selected_columns
    c, f = len(columns), net.config.max_frames
    print(
        f"model: {net.num_parameters() / 1e6:.2f}M parameters, max_frames "
        f"{f}, {net.config.max_target_len} decoder steps"
    )

    rng = np.random.default_rng(0)
    lengths = kaggle_lengths(args.sequences, rng)
    xs = inputs_for(lengths, c, rng)
    print(
        f"lengths: mean {lengths.mean():.0f}, median {np.median(lengths):.0f}, "
        f"max {lengths.max()}; {(lengths > f).sum()} longer than max_frames"
    )

    out = Path(args.out)
    runners = {}
    for weights in args.weights:
        for decoding in args.decodings:
            name = weights if decoding == "attention" else f"{weights} {decoding}"
            result = convert(
                net, columns, out / name.replace(" ", "_"), weights=weights, decoding=decoding
            )
            stages = ", ".join(f"{k} {v:.1f}s" for k, v in result.stage_seconds.items())
            print(
                f"[{name}] conversion {result.seconds:.1f}s ({stages}); file size "
                f"{result.size_bytes / 1e6:.1f} MB"
            )
            runners[name] = TFLiteRunner(result.model_path, num_threads=1)
    for path in args.baseline:
        runners[f"baseline {path}"] = TFLiteRunner(path, num_threads=1)
    # a baseline reading other columns: the same lengths, made once per column count
    by_columns, inputs = {c: xs}, {}
    for name, runner in runners.items():
        if runner.columns not in by_columns:
            by_columns[runner.columns] = inputs_for(
                lengths, runner.columns, np.random.default_rng(1)
            )
        inputs[name] = by_columns[runner.columns]
        runner.outputs(inputs[name][1])  # warm-up

    def pytorch(x):
        with torch.no_grad():
            greedy_without_cache(net, x)

    own = [own_frames(x, f) for x in xs]
    padded = [torch.from_numpy(fit_length(x, f))[None] for x in xs]
    passes = {name: (r.outputs, inputs[name]) for name, r in runners.items()}
    passes["pytorch own"] = (pytorch, own)
    passes["pytorch padded"] = (pytorch, padded)
    pytorch(own[1])  # warm-up, as for the TFLite runners
    rounds, rates = timed_in_rounds(passes, args.rounds)
    # noise on a shared machine only adds time: each input's best round, the best matmul rate
    latency = {name: ms.min(0) for name, ms in rounds.items()}
    ref_own, ref_pad = latency.pop("pytorch own"), latency.pop("pytorch padded")
    rate = max(rates)
    needed = []
    with torch.no_grad():
        for x in own:
            with FlopCounterMode(display=False) as counter:
                net.generate(x)  # the KV-cache decoder: the work needed
            needed.append(counter.get_total_flops() / 1e9)
        with FlopCounterMode(display=False) as counter:
            net.generate(padded[1])
        padded_gflop = counter.get_total_flops() / 1e9
    floor = np.array(needed) / rate * 1000
    print(
        f"matmul rate (1 thread, best of {', '.join(f'{r:.1f}' for r in rates)}): "
        f"{rate:.1f} GFLOP/s; needed work: median "
        f"{np.median(needed):.2f} GFLOP = {np.median(floor):.1f} ms floor (training path, "
        f"{f} frames: {padded_gflop:.2f} GFLOP = {padded_gflop / rate * 1000:.1f} ms)"
    )
    ref = min(np.median(ref_own), np.median(ref_pad))
    print(
        f"PyTorch greedy without KV cache, 1 thread: median {np.median(ref_own):.1f} ms on the "
        f"sequence's own frames, {np.median(ref_pad):.1f} ms padded to {f}"
    )
    for name, ms in latency.items():
        print(
            f"[{name}] TFLite, 1 thread: median {np.median(ms):.1f} ms, p90 "
            f"{np.percentile(ms, 90):.1f} ms; median / floor {np.median(ms) / np.median(floor):.2f}x"
            f" (per-sequence ratio: median {np.median(ms / floor):.2f}x); speed-up over "
            f"PyTorch without cache {ref / np.median(ms):.2f}x; median of each round "
            f"{', '.join(f'{np.median(m):.1f}' for m in rounds[name])} ms"
        )


if __name__ == "__main__":
    main()
