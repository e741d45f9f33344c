"""Export a checkpoint (or a config's randomly initialised model) as a Kaggle submission.

(``python scripts/export_tflite.py`` takes the same arguments.)

    aslfs-export --ckpt runs/quickstart/checkpoints/last.ckpt --out artifacts/sub
        [--model.beam_width 8 ...]
    aslfs-export --config configs/seed.yaml --model.dim 192 --out artifacts/x
        [--fp32 | --int8] [--decoding NAME | best] [--no_check]
    aslfs-export --ckpt seed1.ckpt --ckpt seed2.ckpt --out artifacts/two   (one file, 2 networks)
    aslfs-export --config configs/first_place.yaml --members 2 --out artifacts/x   (sizes)

With --ckpt, the read-out's --model.* settings replace the checkpoint's (how its weights are read
out: --model.decoding, beam_width, fallback_phrase, fallback_frames, fallback_confidence; any
other setting is refused). The read-out in the file: --decoding; by default the one with the best
held-out score the checkpoint logged (when it logged several: a run with the CTC head scores every
decoding at each validation), else the checkpoint's model.decoding. The summary names it and why.
Without --ckpt, every other argument is a training CLI argument (--config files, --model.*,
--data.*), parsed as scripts/fit.py parses it. Writes OUT/model.tflite, OUT/inference_args.json
and OUT/submission.zip, then checks the TFLite model against PyTorch at a few lengths (by each
decoding's parity rule: docs/export.md) and exits with status 1 if it fails, or if the model file
is over Kaggle's 40 MB (read as 40 MiB).

Several --ckpt (or --members N with a config) make one file of an ensemble
(aslfs_pl/model/ensemble.py): every network encodes the frames, and each decoder step (and each
CTC frame) reads the mean of their log-probabilities; the networks must share the landmark
columns, frames, phrase length and read-out settings (--model.* applies to all of them).
"""

from __future__ import annotations

import argparse
import logging
import sys

from aslfs_pl.deploy.contract import MAX_MODEL_BYTES
from aslfs_pl.deploy.convert import check_writable, convert
from aslfs_pl.deploy.parity import parity_report
from aslfs_pl.deploy.stages import ExportError, Job
from aslfs_pl.model.decoding import DECODINGS
from aslfs_pl.terminal import quiet_logging
from aslfs_pl.trained import BEST, LoadError, choose_decoding, from_arguments


def parser() -> argparse.ArgumentParser:
    """The command line (``--help`` lists the decodings from the registry)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter, allow_abbrev=False
    )
    p.add_argument(
        "--ckpt",
        action="append",
        help="a training checkpoint (.ckpt); several (--ckpt a --ckpt b ...): one file that "
        "averages their per-step log-probabilities (an ensemble, e.g. of seeds)",
    )
    p.add_argument(
        "--members",
        type=int,
        default=1,
        help="without --ckpt: an ensemble of this many randomly initialised networks of the "
        "config (seeds 0, 1, ...), to check an ensemble's size and latency before training",
    )
    p.add_argument("--out", required=True, help="output directory")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument(
        "--fp16",
        dest="weights",
        action="store_const",
        const="fp16",
        default="fp16",
        help="fp16 weights (default)",
    )
    prec.add_argument(
        "--fp32",
        dest="weights",
        action="store_const",
        const="fp32",
        help="fp32 weights (twice the file, same speed)",
    )
    prec.add_argument(
        "--int8",
        dest="weights",
        action="store_const",
        const="int8",
        help="int8 dynamic-range weights (smaller file, ~2x faster on this CPU; may "
        "flip near-tie tokens: check the score with aslfs-evaluate)",
    )
    p.add_argument(
        "--decoding",
        choices=[*DECODINGS, BEST],
        default=None,
        help="the read-out in the graph (default: best when the checkpoint logged more than one "
        "decoding's held-out score, else its model.decoding):\n"
        + "\n".join(f"  {name}: {d.summary}" for name, d in DECODINGS.items())
        + f"\n  {BEST}: the decoding with the best held-out score the checkpoint logged",
    )
    p.add_argument("--no_check", action="store_true", help="skip the parity check")
    return p


def over_the_limit(path: object, size_bytes: int) -> str | None:
    """Why a model file of ``size_bytes`` is no submission (over Kaggle's limit), or None."""
    if size_bytes <= MAX_MODEL_BYTES:
        return None
    return (
        f"{path} is {size_bytes / 2**20:.1f} MiB, over Kaggle's 40 MB "
        f"({MAX_MODEL_BYTES / 2**20:.0f} MiB) model limit: fewer networks, a smaller network, "
        "or --int8"
    )


def main(argv: list[str] | None = None) -> None:
    p = parser()
    args, config_args = p.parse_known_args(argv)
    quiet_logging()
    logging.getLogger("torchao").setLevel(logging.ERROR)
    try:
        trained = from_arguments(p, args.ckpt, config_args, args.members)
        check_writable(args.out)  # before minutes of conversion
        net, columns = trained.net, trained.landmarks.selected_columns
        members = f" ({len(net.members)} networks)" if trained.ensemble is not None else ""
        print(
            f"model: {net.num_parameters() / 1e6:.2f}M parameters{members}, "
            f"{len(columns)} input columns"
        )
        given = any(a.startswith("--model.decoding") for a in config_args)
        decoding, why = choose_decoding(
            trained, args.decoding or (trained.decoding if given else None)
        )
        print(f"read-out: {decoding} ({why})")
        result = convert(net, columns, args.out, weights=args.weights, decoding=decoding)
        print(
            f"wrote {result.zip_path} ({result.size_bytes / 1e6:.1f} MB = "
            f"{result.size_bytes / 2**20:.1f} MiB model, {args.weights}, {decoding} decoding) "
            f"in {result.seconds:.0f}s"
        )
        too_big = over_the_limit(result.model_path, result.size_bytes)
        if too_big:
            sys.exit(f"export failed: {too_big}")
        if not args.no_check:
            with Job("parity", ["check"]) as job, job.stage("check"):
                report = parity_report(
                    net, result.model_path, args.weights, track=job.track, decoding=decoding
                )
            print(report.summary())
            if not report.ok:
                sys.exit(1)
    except (ExportError, LoadError) as err:
        sys.exit(f"export failed: {err}")


if __name__ == "__main__":
    main()
