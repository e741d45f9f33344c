"""Export a checkpoint (or a config's randomly initialised model) as a Kaggle submission.

    python scripts/export_tflite.py --ckpt runs/quickstart/checkpoints/last.ckpt --out artifacts/sub
    python scripts/export_tflite.py --config configs/seed.yaml --out artifacts/seed_random
        [--fp32 | --int8] [--route static]

Writes OUT/model.tflite, OUT/inference_args.json and OUT/submission.zip, then checks the TFLite
model against PyTorch at a few lengths (logits within tolerance; decoded text equal, except that
int8 weights may flip a near tie) and exits with status 1 if it fails.
"""

from __future__ import annotations

import argparse
import logging
import sys

from aslfs_pl.export import (
    ROUTES,
    ExportError,
    convert,
    load_checkpoint,
    model_from_config,
    parity_report,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", help="a training checkpoint (.ckpt)")
    src.add_argument("--config", help="a YAML config: export a randomly initialised model")
    p.add_argument("--out", required=True, help="output directory")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--fp16", dest="weights", action="store_const", const="fp16",
                      default="fp16", help="fp16 weights (default)")  # fmt: skip
    prec.add_argument("--fp32", dest="weights", action="store_const", const="fp32",
                      help="fp32 weights (twice the file, same speed)")  # fmt: skip
    prec.add_argument("--int8", dest="weights", action="store_const", const="int8",
                      help="int8 dynamic-range weights (smaller file, ~2x faster on this CPU; may "
                           "flip near-tie tokens: check the score with scripts/evaluate.py)")  # fmt: skip
    p.add_argument("--route", choices=ROUTES, default="dynamic",
                   help="dynamic frame axis (default; cost follows the length) or static "
                        "(max_frames always)")  # fmt: skip
    p.add_argument("--buffer_frames", type=int, default=1024,
                   help="static route: most frames read per sequence (Kaggle's longest: 807)")  # fmt: skip
    p.add_argument("--no_check", action="store_true", help="skip the parity check")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    # stage progress from the package; the converter's own logs stay quiet
    logging.getLogger("aslfs_pl").setLevel(logging.INFO)
    logging.getLogger("torchao").setLevel(logging.ERROR)
    try:
        if args.ckpt:
            trained = load_checkpoint(args.ckpt)
            net, landmarks = trained.net, trained.landmarks
        else:
            net, landmarks = model_from_config(args.config)
        print(f"model: {net.num_parameters() / 1e6:.2f}M parameters, "
              f"{len(landmarks.selected_columns)} input columns")  # fmt: skip
        result = convert(net, landmarks.selected_columns, args.out, weights=args.weights,
                         route=args.route, buffer_frames=args.buffer_frames)  # fmt: skip
        print(f"wrote {result.zip_path} ({result.size_bytes / 1e6:.1f} MB model, "
              f"{args.weights}) in {result.seconds:.0f}s")  # fmt: skip
        if not args.no_check:
            read = args.buffer_frames if args.route == "static" else None
            report = parity_report(net, result.model_path, read, weights=args.weights)
            print(report.summary())
            if not report.ok:
                sys.exit(1)
    except ExportError as err:
        sys.exit(f"export failed: {err}")


if __name__ == "__main__":
    main()
