"""Training curves (loss, masked accuracy, every decoding's score per epoch) of a run as PNG.

python scripts/plot_curves.py --metrics runs/quickstart/lightning_logs/version_0/metrics.csv
python scripts/plot_curves.py --run runs/quickstart        # its newest version
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aslfs_pl.bench.plots import plot_training_curves


def newest_metrics(run_dir: str) -> Path | None:
    files = sorted(
        Path(run_dir).glob("lightning_logs/version_*/metrics.csv"), key=lambda p: p.stat().st_mtime
    )
    return files[-1] if files else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--metrics", help="a metrics.csv written by Lightning's CSVLogger")
    src.add_argument("--run", help="a --trainer.default_root_dir: plots its newest log")
    p.add_argument("--out", default=None, help="PNG path (default: curves.png beside the csv)")
    args = p.parse_args()
    metrics = Path(args.metrics) if args.metrics else newest_metrics(args.run)
    if metrics is None or not metrics.is_file():
        sys.exit(f"no metrics.csv found ({args.metrics or args.run})")
    out = plot_training_curves(metrics, args.out or metrics.parent / "curves.png")
    print(f"training curves: {out}")


if __name__ == "__main__":
    main()
