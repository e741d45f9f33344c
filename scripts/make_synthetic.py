"""Write a synthetic dataset in Kaggle's ASL Fingerspelling layout.

Examples:
    python scripts/make_synthetic.py --out data/synthetic --num-sequences 3000 --supplemental 500
    python scripts/make_synthetic.py --out data/hard --num-sequences 3000 --difficulty hard \
        --participants 30
    python scripts/make_synthetic.py ... --difficulty hard --without tracking,noise
"""

from __future__ import annotations

import argparse
import logging

from aslfs_pl.data.synthetic import write_synthetic_dataset
from aslfs_pl.data.synthetic.difficulty import Difficulty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="dataset root to write")
    parser.add_argument("--num-sequences", type=int, required=True, help="train sequences")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--supplemental", type=int, default=0, help="supplemental sequences")
    parser.add_argument("--sequences-per-file", type=int, default=250)
    parser.add_argument("--participants", type=int, default=None, help="signers (default 12..18)")
    parser.add_argument(
        "--difficulty", choices=("plain", "hard"), default="plain",
        help="plain: clearly separable shapes; hard: every factor of aslfs_pl/data/synthetic/difficulty.py "
        "(signer styles: signers.py)",
    )  # fmt: skip
    parser.add_argument(
        "--without", default="", metavar="FACTOR[,FACTOR]",
        help=f"difficulty factors to leave off: {', '.join(Difficulty.factors())}",
    )  # fmt: skip
    args = parser.parse_args()
    try:
        difficulty = Difficulty.preset(args.difficulty, [f for f in args.without.split(",") if f])
    except ValueError as err:
        parser.error(str(err))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    s = write_synthetic_dataset(
        args.out,
        args.num_sequences,
        seed=args.seed,
        supplemental_sequences=args.supplemental,
        sequences_per_file=args.sequences_per_file,
        num_participants=args.participants,
        difficulty=difficulty,
    )
    tr = s["train"]
    sup = s.get("supplemental", {"num_sequences": 0})
    wrong = f", {tr['mislabelled']} wrong labels" if tr["mislabelled"] else ""
    print(
        f"wrote {tr['num_sequences']} train ({len(tr['files'])} files, {tr['num_frames']} frames, "
        f"mean {tr['mean_frames']:.1f} / median {tr['median_frames']:.0f} / max "
        f"{tr['max_frames']} frames, mean phrase {tr['mean_phrase_len']:.1f} chars, "
        f"{tr['left_handed_fraction']:.0%} left-handed) + {sup['num_sequences']} supplemental "
        f"sequences, {s['num_participants']} participants, difficulty {s['difficulty']}"
        f"{wrong}, to {s['out_dir']} in {s['seconds']}s"
    )


if __name__ == "__main__":
    main()
