"""The technique table: each technique as one switch over the quickstart recipe, on held-out signers
of the hard synthetic benchmark, several training seeds, the same wall-clock budget.

    python scripts/make_synthetic.py --out data/hard --num-sequences 3000 --difficulty hard \\
        --participants 30 --supplemental 1500
    python scripts/bench_recipes.py --data data/hard --out runs/recipes [--seeds 42 43]
        [--recipes baseline ema ... combination] [--epochs 14] [-- <extra fit.py arguments>]

A row is ``fit.py --config configs/quickstart.yaml <the recipe's switches> --trainer.max_epochs
E`` with E = round(epochs / cost). ``--epochs`` is the baseline's budget (14: the quickstart's;
the learning-rate schedule follows max_epochs, and it overrides a max_epochs of the extra
arguments). ``cost`` is the recipe's time per epoch relative to the baseline (AWP from half-way
runs a second forward/backward in half the epochs: 1.5; the supplemental sequences make an epoch
1.5 times longer), so each row gets about the baseline's wall-clock budget; the minutes column
shows what each row took. Validation scores the same 3 held-out signers' train sequences in
every row. The decoding rows change no training: they read the ``val/score_ctc``,
``val/score_joint`` or ``val/score_beam`` of another row's run (validation scores every decoding
when the CTC head is on). Finished rows
are kept in ``<out>/results.json`` (rerun resumes); the table is printed after each row.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from aslfs_pl.bench.quality import Results, fit_and_score, with_metric

EMA = ("--trainer.callbacks+=aslfs_pl.callbacks.EMA", "--trainer.callbacks.decay=0.99")
CONFORMER = (
    "--model.encoder",
    "conformer",
    "--model.encoder_blocks",
    "2",
    "--model.encoder_conf",
    "{kernel: 15}",
)
SQUEEZEFORMER = (
    "--model.encoder", "squeezeformer", "--model.encoder_blocks", "3",
    "--model.encoder_conf", "{kernel: 15}", "--model.rotary", "true",
)  # fmt: skip
SUPPLEMENTAL = ("--data.sources", "[train, supplemental]", "--data.val_sources", "[train]")
TOKEN_NOISE = ("--model.token_noise", "0.2")
FACE_POSE_DROP = ("--data.augment.face_drop_p", "0.2", "--data.augment.pose_drop_p", "0.2")
CUTMIX = ("--data.augment.cutmix_p", "0.5")
DECODER_ROTARY = ("--model.decoder_rotary", "true")


@dataclass(frozen=True)
class Recipe:
    switches: tuple[str, ...] = ()  # over configs/quickstart.yaml
    cost: float = 1.0  # time per epoch relative to the baseline
    metric: str = "val/score"  # the score the row reports
    run: str = ""  # the run of another row it reads (a decoding of the same training)


RECIPES: dict[str, Recipe] = {
    "baseline": Recipe(),
    "ctc decoding": Recipe(metric="val/score_ctc", run="baseline"),
    "joint decoding": Recipe(metric="val/score_joint", run="baseline"),
    "beam decoding": Recipe(metric="val/score_beam", run="baseline"),
    "ema": Recipe(EMA),
    "drop path": Recipe(("--model.drop_path", "0.1")),
    "late dropout": Recipe(("--model.dropout_start", "0.3")),
    "awp": Recipe(("--model.awp_start", "0.5"), 1.5),
    "sequence mixing": Recipe(("--data.augment.mix_p", "0.5")),
    "finger affine": Recipe(("--data.augment.finger_affine_p", "0.5")),
    "supplemental": Recipe(SUPPLEMENTAL, 1.5),
    "combination": Recipe(("--config", "configs/beyond_cpu.yaml")),
    # encoder families at about the quickstart's size (0.55M, 0.69M parameters against 0.56M);
    # costs: training sequences/s against the quickstart's, scripts/bench_train.py (benchmarks.md)
    "conformer": Recipe(CONFORMER, 0.92),
    "squeezeformer + rotary": Recipe(SQUEEZEFORMER, 1.08),
    # rotary positions in the decoder's self-attention too (its own cost not measured: the
    # encoder-only row's)
    "squeezeformer + rotary everywhere": Recipe((*SQUEEZEFORMER, *DECODER_ROTARY), 1.08),
    "rotary": Recipe(("--model.rotary", "true"), 1.06),
    # the winners' training tricks (their rates: decoder inputs 20%, CutMix 0.5, face and pose
    # each dropped in about 1 sequence in 5)
    "token replacement": Recipe(TOKEN_NOISE),
    "token masking": Recipe((*TOKEN_NOISE, "--model.token_noise_mode", "mask")),
    "face + pose dropout": Recipe(FACE_POSE_DROP),
    "cutmix": Recipe(CUTMIX),
    "tricks": Recipe((*TOKEN_NOISE, *FACE_POSE_DROP, *CUTMIX)),
    # the best family with the tricks: the combination at the full budget
    "conformer + tricks": Recipe((*CONFORMER, *TOKEN_NOISE, *FACE_POSE_DROP, *CUTMIX), 0.92),
}
for _name in ("token replacement", "token masking", "face + pose dropout", "cutmix", "tricks"):
    RECIPES[f"{_name}, joint decoding"] = Recipe(metric="val/score_joint", run=_name)
for _name in (
    "conformer", "conformer + tricks", "squeezeformer + rotary",
    "squeezeformer + rotary everywhere", "rotary",
):  # fmt: skip
    for _decoding in ("joint", "beam"):
        RECIPES[f"{_name}, {_decoding} decoding"] = Recipe(
            metric=f"val/score_{_decoding}", run=_name
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the hard benchmark's dataset root")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43])
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument(
        "--epochs", type=int, default=14, help="the baseline's epochs (14: the quickstart's)"
    )
    args, extra = parser.parse_known_args()
    if args.epochs < 1:
        parser.error(f"--epochs {args.epochs}: the baseline's budget must be at least 1 epoch")
    extra = [a for a in extra if a != "--"]
    results = Results(args.out / "results.json")
    read = {n for name in args.recipes for n in (name, RECIPES[name].run or name)}
    for seed in args.seeds:  # a finished row of another budget is not this table's
        for name in sorted(read):
            row, want = results.rows.get(f"{name} seed {seed}"), epochs_of(name, args.epochs)
            if row is not None and row["epochs"] != want:
                parser.error(
                    f"{results.path}: row '{name} seed {seed}' trained {row['epochs']} epochs, "
                    f"--epochs {args.epochs} gives it {want}: choose another --out"
                )
    for seed in args.seeds:
        for name in args.recipes:
            key = f"{name} seed {seed}"
            if key in results:
                continue
            recipe = RECIPES[name]
            source = recipe.run or name
            run = results.rows.get(f"{source} seed {seed}")
            if run is None:
                root = args.out / "runs" / f"{source.replace(' ', '_')}-{seed}"
                run = fit_and_score(fit_args(source, seed, args.epochs, args.data, extra), root)
                if recipe.run:
                    results.add(f"{source} seed {seed}", run)
            results.add(key, with_metric(run, recipe.metric))
            print(results.table(), flush=True)
    print(results.table())
    print(summary(results.rows))


def summary(rows: dict[str, dict]) -> str:
    """Each recipe's final score per seed, their mean and its gain over the baseline's mean."""
    finals: dict[str, dict[int, float]] = {}
    for key, row in rows.items():
        name, seed = key.rsplit(" seed ", 1)
        finals.setdefault(name, {})[int(seed)] = row["final"]
    base = finals.get("baseline")
    lines = [
        "| recipe | seeds | final val/score per seed | mean | vs baseline |",
        "|---|---|---|---|---|",
    ]
    for name, by_seed in finals.items():
        mean = sum(by_seed.values()) / len(by_seed)
        seeds = sorted(by_seed)
        gain = ""
        if base and name != "baseline" and all(s in base for s in seeds):
            gain = f"{mean - sum(base[s] for s in seeds) / len(seeds):+.3f}"
        values = " / ".join(f"{by_seed[s]:.3f}" for s in seeds)
        lines.append(f"| {name} | {' '.join(map(str, seeds))} | {values} | {mean:.3f} | {gain} |")
    return "\n".join(lines)


def epochs_of(name: str, epochs: int) -> int:
    """The recipe's epochs for a baseline budget of ``epochs`` (a decoding row: its run's)."""
    recipe = RECIPES[name]
    return max(1, round(epochs / RECIPES[recipe.run or name].cost))


def fit_args(name: str, seed: int, epochs: int, data: str, extra: list[str]) -> list[str]:
    """The recipe's ``fit.py`` arguments for a baseline budget of ``epochs``."""
    return [
        "--config",
        "configs/quickstart.yaml",
        *RECIPES[name].switches,
        *extra,  # then the seed, the budget and the data: a --config in ``extra`` keeps them
        "--seed_everything",
        str(seed),
        "--trainer.max_epochs",
        str(epochs_of(name, epochs)),
        "--data.data_dir",
        data,
    ]


if __name__ == "__main__":
    main()
