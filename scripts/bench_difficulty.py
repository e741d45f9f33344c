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
import subprocess
import sys
from pathlib import Path

from aslfs_pl.bench.quality import Results, fit_and_score
from aslfs_pl.data.synthetic.difficulty import Difficulty

MAKE_SYNTHETIC = Path(__file__).resolve().parent / "make_synthetic.py"


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
        sys.executable, str(MAKE_SYNTHETIC), "--out", str(out),
        "--num-sequences", str(args.num_sequences), "--participants", str(args.participants),
        "--seed", str(args.data_seed), "--difficulty", "hard" if d.any else "plain",
    ]  # fmt: skip
    if d.any and without:
        cmd += ["--without", ",".join(without)]
    subprocess.run(cmd, check=True)


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
    results = Results(args.out / "results.json")
    for name in args.variants:
        key = f"{name} seed {args.seed}"
        if key not in results:
            data = args.out / "data" / name
            make_data(data, name, args)
            fit = ["--config", args.config, *extra,  # a --config in ``extra`` keeps these:
                   "--seed_everything", str(args.seed), "--data.data_dir", str(data)]  # fmt: skip
            results.add(key, fit_and_score(fit, args.out / "runs" / f"{name}-{args.seed}"))
        print(results.table(), flush=True)


if __name__ == "__main__":
    main()
