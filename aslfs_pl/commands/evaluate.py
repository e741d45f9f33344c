"""Score a submission (and optionally the checkpoint it came from) on a Kaggle-format dataset.

(``python scripts/evaluate.py`` takes the same arguments.)

    aslfs-evaluate --submission artifacts/quickstart/submission.zip \
        --data_dir data/synthetic --ckpt runs/quickstart/checkpoints/last.ckpt --split val

Reads every sequence as Kaggle's evaluator does (the submission's selected_columns), runs
the TFLite model (1 thread), argmax-decodes through the character map and prints the competition
score; with --ckpt, the PyTorch model is scored on the same sequences, side by side.
--split val rebuilds the checkpoint's validation split exactly (its data sources, phrase filter
and split settings are recorded in it; only the data directory is taken from --data_dir);
--split all scores every sequence of train.csv. --model.* settings after --ckpt replace the
checkpoint's (its read-out, e.g. --model.beam_width 8, as the export takes them). The checkpoint is
read with the decoding the export ships by default (the best held-out score it logged, see
aslfs-export) unless --model.decoding names one.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from aslfs_pl.data.kaggle import DataError, load_index
from aslfs_pl.deploy.runtime import TFLiteRunner
from aslfs_pl.deploy.stages import ExportError
from aslfs_pl.kaggle_scoring import score, torch_predictor
from aslfs_pl.terminal import quiet_logging
from aslfs_pl.trained import (
    LoadError,
    choose_decoding,
    load_checkpoint,
    parse_with_model_settings,
)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--submission", help="submission.zip, a directory holding model.tflite, or a .tflite"
    )
    p.add_argument("--ckpt", help="also score this PyTorch checkpoint (and take its split)")
    p.add_argument("--data_dir", required=True)
    p.add_argument("--split", choices=["val", "all"], default="val")
    p.add_argument("--limit", type=int, default=None, help="score only the first N sequences")
    p.add_argument("--threads", type=int, default=1, help="TFLite interpreter threads")
    args, model = parse_with_model_settings(p, argv)
    quiet_logging()
    if not args.submission and not args.ckpt:
        p.error("give --submission and/or --ckpt")
    try:
        if args.split == "val" and not args.ckpt:
            p.error("--split val needs --ckpt (the split is recorded in the checkpoint)")
        trained = load_checkpoint(args.ckpt, args.data_dir, model) if args.ckpt else None
        if args.split == "val":
            # the training split exactly: the checkpoint's sources, phrase filter and settings
            dm = trained.datamodule
            index = dm.split(dm.index())[1]
        else:
            index = load_index(args.data_dir)
        if len(index) == 0:
            raise DataError(
                f"the {args.split} split of {args.data_dir} holds no sequence (a checkpoint "
                "trained with data.val_fraction 0 has no validation split: use --split all)"
            )
        if args.limit:
            index = index.subset(np.arange(min(args.limit, len(index))))
        predictors, columns, read_out = {}, None, None
        if args.submission:
            runner = TFLiteRunner(args.submission, num_threads=args.threads)
            predictors["tflite"] = runner
            columns = runner.selected_columns
        if trained is not None:
            decoding, why = choose_decoding(trained, model.get("decoding"))
            read_out = f"  the checkpoint read with {decoding}: {why}"
            predictors["pytorch"] = torch_predictor(trained.net, decoding)
            ckpt_columns = trained.landmarks.selected_columns
            if columns is not None and columns != ckpt_columns:
                sys.exit("the submission and the checkpoint read different columns")
            columns = ckpt_columns
        if columns is None:
            sys.exit("the submission has no inference_args.json: cannot tell its columns")
        results = score(predictors, index, columns)
    except (DataError, ExportError, LoadError) as err:
        sys.exit(f"evaluate failed: {err}")
    print(f"{len(index)} sequences ({args.split} split of {args.data_dir})")
    if read_out:
        print(read_out)
    for name, r in results.items():
        print(f"  {name:8s} score {r.score:.4f}   {1000 * r.seconds_per_sequence:.1f} ms/sequence")
    if len(results) == 2:
        a, b = results["tflite"].predictions, results["pytorch"].predictions
        same = sum(a[k] == b[k] for k in a)
        print(f"  identical predictions: {same} / {len(a)}")


if __name__ == "__main__":
    main()
