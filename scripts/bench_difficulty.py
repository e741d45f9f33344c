"""The difficulty table: what each factor of the hard benchmark costs a recipe, on held-out signers.

    python scripts/bench_difficulty.py --out runs/difficulty [--config configs/quickstart.yaml]
        [--variants hard plain no-tracking no-noise ...] [--seed 0] [-- <extra fit.py arguments>]

For each variant it writes a synthetic dataset (``hard``: every factor; ``plain``: none;
``no-<factor>``: every factor but that one), trains the config on it with ``scripts/fit.py``
(validation on held-out participants, as the config says) and reads the final and the best
``val/score`` from the run's metrics. Finished variants are kept in ``<out>/results.json`` and not
rerun; the table is printed after each variant.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from aslfs_pl.data.difficulty import Difficulty
from aslfs_pl.plots import epoch_metrics

ROOT = Path(__file__).resolve().parents[1]


def variant_difficulty(name: str) -> Difficulty:
    if name in ("hard", "plain"):
        return Difficulty.preset(name)
    if name.startswith("no-"):
        return Difficulty.preset("hard", without=[name[3:]])
    raise ValueError(
        f"variant {name!r}: hard, plain or no-<factor> ({', '.join(Difficulty.factors())})"
    )


def make_data(out: Path, name: str, args: argparse.Namespace) -> None:
    if (out / "train.csv").exists():
        return
    d = variant_difficulty(name)
    without = [f for f in Difficulty.factors() if not getattr(d, f)]
    cmd = [
        sys.executable, str(ROOT / "scripts" / "make_synthetic.py"), "--out", str(out),
        "--num-sequences", str(args.num_sequences), "--participants", str(args.participants),
        "--seed", str(args.data_seed), "--difficulty", "hard" if d.any else "plain",
    ]  # fmt: skip
    if d.any and without:
        cmd += ["--without", ",".join(without)]
    subprocess.run(cmd, check=True)


def fit_and_score(data: Path, root: Path, args: argparse.Namespace, extra: list[str]) -> dict:
    """Train once; the final and best held-out val/score and the wall-clock seconds."""
    cmd = [
        sys.executable, str(ROOT / "scripts" / "fit.py"), "--config", args.config,
        "--data.data_dir", str(data), "--trainer.default_root_dir", str(root),
        "--seed_everything", str(args.seed), "--trainer.enable_progress_bar", "false", *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.with_suffix(".log"), "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    runs = sorted(
        root.glob("lightning_logs/version_*/metrics.csv"), key=lambda p: p.stat().st_mtime
    )
    scores = epoch_metrics(runs[-1])["val/score"]
    last = max(scores)
    return {
        "final": scores[last],
        "best": max(scores.values()),
        "epochs": last + 1,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument(
        "--variants", nargs="+",
        default=["plain", "hard", *(f"no-{f}" for f in Difficulty.factors())],
    )  # fmt: skip
    parser.add_argument("--num-sequences", type=int, default=3000)
    parser.add_argument("--participants", type=int, default=30)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=42, help="training seed")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    for name in args.variants:
        variant_difficulty(name)  # a bad name fails before any training
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name in args.variants:
        key = f"{name} seed {args.seed}"
        if key not in results:
            data = args.out / "data" / name
            make_data(data, name, args)
            results[key] = fit_and_score(
                data, args.out / "runs" / f"{name}-{args.seed}", args, extra
            )
            results_path.write_text(json.dumps(results, indent=1))
        print("| variant | final val/score | best | epochs | minutes |")
        print("|---|---|---|---|---|")
        for k, r in results.items():
            print(
                f"| {k} | {r['final']:.3f} | {r['best']:.3f} | {r['epochs']} | "
                f"{r['seconds'] / 60:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
