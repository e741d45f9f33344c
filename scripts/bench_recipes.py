"""The technique table: each technique as one switch over the quickstart recipe, on held-out signers
of the hard synthetic benchmark, several training seeds, the same wall-clock budget.

    python scripts/make_synthetic.py --out data/hard --num-sequences 3000 --difficulty hard \\
        --participants 30 --supplemental 1500
    python scripts/bench_recipes.py --data data/hard --out runs/recipes [--seeds 42 43]
        [--recipes baseline ema ... combination] [-- <extra fit.py arguments>]

A row is ``fit.py --config configs/quickstart.yaml <the recipe's switches> --trainer.max_epochs
E`` with E = round(14 / cost): ``cost`` is the recipe's time per epoch relative to the baseline
(AWP from half-way runs a second forward/backward in half the epochs: 1.5; the supplemental
sequences make an epoch 1.5 times longer), so each row gets about the baseline's wall-clock
budget; the minutes column shows what each row took. Validation scores the same 3 held-out
signers' train sequences in every row. Finished rows are kept in ``<out>/results.json`` (rerun
resumes); the table is printed after each row.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aslfs_pl.quality import Results, fit_and_score

EPOCHS = 14  # the quickstart's budget
EMA = ["--trainer.callbacks+=lightning.pytorch.callbacks.EMAWeightAveraging",
       "--trainer.callbacks.decay=0.99"]  # fmt: skip
SUPPLEMENTAL = ["--data.sources", "[train, supplemental]", "--data.val_sources", "[train]"]
#: name -> (switches over configs/quickstart.yaml, cost per epoch relative to the baseline)
RECIPES: dict[str, tuple[list[str], float]] = {
    "baseline": ([], 1.0),
    "ctc decoding": (["--model.decoding", "ctc"], 1.0),
    "joint decoding": (["--model.decoding", "joint"], 1.0),
    "ema": (EMA, 1.0),
    "drop path": (["--model.drop_path", "0.1"], 1.0),
    "late dropout": (["--model.dropout_start", "0.3"], 1.0),
    "awp": (["--model.awp_start", "0.5"], 1.5),
    "sequence mixing": (["--data.augment.mix_p", "0.5"], 1.0),
    "finger affine": (["--data.augment.finger_affine_p", "0.5"], 1.0),
    "supplemental": (SUPPLEMENTAL, 1.5),
    "combination": (["--config", "configs/beyond_cpu.yaml"], 2.25),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the hard benchmark's dataset root")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43])
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    results = Results(args.out / "results.json")
    for seed in args.seeds:
        for name in args.recipes:
            key = f"{name} seed {seed}"
            if key in results:
                continue
            switches, cost = RECIPES[name]
            fit = [
                "--config", "configs/quickstart.yaml", *switches, "--seed_everything", str(seed),
                "--trainer.max_epochs", str(max(1, round(EPOCHS / cost))), *extra,
                "--data.data_dir", args.data,  # last: a --config in the extra arguments keeps it
            ]  # fmt: skip
            run = args.out / "runs" / f"{name.replace(' ', '_')}-{seed}"
            results.add(key, fit_and_score(fit, run))
            print(results.table(), flush=True)
    print(results.table())


if __name__ == "__main__":
    main()
