"""Write a synthetic dataset in Kaggle's ASL Fingerspelling layout.

Example:
    python scripts/make_synthetic.py --out data/synthetic --num-sequences 3000 --supplemental 500
"""

from __future__ import annotations

import argparse
import logging

from aslfs_pl.data.synthetic import write_synthetic_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="dataset root to write")
    parser.add_argument("--num-sequences", type=int, required=True, help="train sequences")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--supplemental", type=int, default=0, help="supplemental sequences")
    parser.add_argument("--sequences-per-file", type=int, default=250)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    s = write_synthetic_dataset(
        args.out,
        args.num_sequences,
        seed=args.seed,
        supplemental_sequences=args.supplemental,
        sequences_per_file=args.sequences_per_file,
    )
    tr = s["train"]
    sup = s.get("supplemental", {"num_sequences": 0})
    print(
        f"wrote {tr['num_sequences']} train ({len(tr['files'])} files, {tr['num_frames']} frames, "
        f"mean {tr['mean_frames']:.1f} / median {tr['median_frames']:.0f} / max "
        f"{tr['max_frames']} frames, mean phrase {tr['mean_phrase_len']:.1f} chars, "
        f"{tr['left_handed_fraction']:.0%} left-handed) + {sup['num_sequences']} supplemental "
        f"sequences, {s['num_participants']} participants, to {s['out_dir']} in {s['seconds']}s"
    )


if __name__ == "__main__":
    main()
