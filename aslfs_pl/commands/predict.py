"""Write phrases for every sequence of a parquet file: csv with sequence_id,phrase.

(``python scripts/predict.py`` takes the same arguments.)

    aslfs-predict --submission artifacts/quickstart/submission.zip \
        --parquet data/synthetic/train_landmarks/123.parquet --out predictions.csv
    aslfs-predict --ckpt runs/quickstart/checkpoints/last.ckpt --parquet ... --out ...
        [--model.beam_width 8 ...]

A checkpoint is read with the decoding the export ships by default (aslfs-export), unless
--model.decoding names one.
"""

from __future__ import annotations

import argparse
import sys

from aslfs_pl.data.kaggle import DataError
from aslfs_pl.deploy.runtime import TFLiteRunner
from aslfs_pl.deploy.stages import ExportError
from aslfs_pl.kaggle_scoring import kaggle_sequences, torch_predictor, write_phrases
from aslfs_pl.terminal import quiet_logging
from aslfs_pl.trained import (
    LoadError,
    choose_decoding,
    load_checkpoint,
    parse_with_model_settings,
)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--submission", help="submission.zip, a model directory or a .tflite")
    src.add_argument("--ckpt", help="a training checkpoint")
    p.add_argument("--parquet", required=True)
    p.add_argument("--out", required=True, help="output csv")
    args, model = parse_with_model_settings(p, argv)
    quiet_logging()
    try:
        if args.submission:
            predict = TFLiteRunner(args.submission)
            columns = predict.selected_columns
            if columns is None:
                sys.exit("the submission has no inference_args.json: cannot tell its columns")
        else:
            trained = load_checkpoint(args.ckpt, model=model)
            decoding, why = choose_decoding(trained, model.get("decoding"))
            print(f"checkpoint read-out: {decoding} ({why})")
            predict = torch_predictor(trained.net, decoding)
            columns = trained.landmarks.selected_columns
        rows = ((sid, predict(frames)) for sid, frames in kaggle_sequences(args.parquet, columns))
        n = write_phrases(args.out, rows)
    except (DataError, ExportError, LoadError) as err:
        sys.exit(f"predict failed: {err}")
    print(f"wrote {n} predictions to {args.out}")


if __name__ == "__main__":
    main()
