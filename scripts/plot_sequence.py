"""Draw one landmark sequence of a Kaggle-format dataset to PNG (title: its phrase).

python scripts/plot_sequence.py --data_dir data/synthetic --sequence_id 123 [--out seq.png]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from aslfs_pl.bench.plots import plot_sequence
from aslfs_pl.data.kaggle import DataError, load_index, read_landmark_file
from aslfs_pl.data.landmarks import LandmarkSet, all_columns


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data_dir", required=True)
    p.add_argument("--sequence_id", type=int, required=True)
    p.add_argument("--out", default=None, help="PNG path (default: sequence_<id>.png)")
    p.add_argument("--panels", type=int, default=8, help="frames drawn as skeletons")
    p.add_argument(
        "--all_face", action="store_true", help="draw all 468 face points, not only lips"
    )
    args = p.parse_args()
    try:
        index = load_index(args.data_dir, max_phrase_len=10_000)
        hit = np.flatnonzero(index.sequence_id == args.sequence_id)
        if not len(hit):
            sys.exit(f"sequence {args.sequence_id} is not listed in {args.data_dir}/train.csv")
        r = hit[0]
        columns = LandmarkSet().selected_columns
        if args.all_face:
            columns = [c for c in all_columns() if c[0] in "xy"]
        frames = read_landmark_file(index.path[r], columns).frames(args.sequence_id)
        if frames is None:
            sys.exit(f"sequence {args.sequence_id} is not in {index.path[r]}")
    except DataError as err:
        sys.exit(f"plot failed: {err}")
    out = args.out or f"sequence_{args.sequence_id}.png"
    plot_sequence(frames, columns, index.phrase[r], out, panels=args.panels)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
