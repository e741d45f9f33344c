"""The fallback phrase for a dataset, and what a checkpoint writes for hopeless inputs.

    python scripts/fallback_phrase.py --data_dir data/hard [--refs 1000] [--ckpt last.ckpt]

Prints a phrase to predict for a sequence the model cannot read
(:func:`aslfs_pl.model.fallback.constant_phrase` over the first ``--refs`` phrases of
train.csv) and its score on them, beside the empty phrase's and the 1st place's phrase for
Kaggle's data. With ``--ckpt``: what the checkpoint writes today for an empty video, an all-NaN
one, and the first 1 and 2 frames of the first sequence of train.csv, and what it writes with
``--model.fallback_frames 3 --model.fallback_phrase <the phrase found>``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from aslfs_pl import vocab
from aslfs_pl.data.kaggle import read_csv_index, read_landmark_file
from aslfs_pl.model.fallback import constant_phrase, constant_score
from aslfs_pl.model.features import fit_length
from aslfs_pl.model.seq2seq import Seq2Seq
from aslfs_pl.trained import load_checkpoint

KAGGLE_FIRST_PLACE = "2 a-e -aroe"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", required=True, type=Path)
    p.add_argument("--refs", type=int, default=1000, help="phrases of train.csv to score on")
    p.add_argument("--ckpt", help="a training checkpoint: its outputs on hopeless inputs")
    args = p.parse_args()
    index = read_csv_index(args.data_dir / "train.csv")
    refs = [str(r) for r in index.column("phrase").to_pylist()[: args.refs]]
    phrase, score = constant_phrase(refs)
    print(f"over {len(refs)} phrases of {args.data_dir / 'train.csv'}:")
    print(f"  found {phrase!r}: score {score:.4f}")
    for name, other in (("the empty phrase", ""), ("the 1st place's", KAGGLE_FIRST_PLACE)):
        print(f"  {name} {other!r}: score {constant_score(other, refs):.4f}")
    if args.ckpt:
        show_hopeless(args.ckpt, args.data_dir, index, phrase)


def show_hopeless(ckpt: str, data_dir: Path, index, phrase: str) -> None:
    trained = load_checkpoint(ckpt, str(data_dir))
    net, columns = trained.net, trained.landmarks.selected_columns
    first = index.slice(0, 1).to_pylist()[0]
    frames = read_landmark_file(data_dir / first["path"], columns).frames(first["sequence_id"])
    inputs = {
        "empty video (0 frames)": np.zeros((0, len(columns)), np.float32),
        "all-NaN video (30 frames)": np.full((30, len(columns)), np.nan, np.float32),
        f"1 frame of sequence {first['sequence_id']}": frames[:1],
        f"2 frames of sequence {first['sequence_id']}": frames[:2],
    }
    config = replace(net.config, fallback_frames=3, fallback_phrase=phrase)
    with_fallback = Seq2Seq(config).eval()
    with_fallback.load_state_dict(net.state_dict())
    f = net.config.max_frames
    print(f"{ckpt} ({net.config.max_frames} frames, decoding {trained.decoding}):")
    for name, x in inputs.items():
        x = torch.from_numpy(fit_length(x, f))[None]
        with torch.no_grad():
            today = vocab.decode(net.decode(x, trained.decoding)[0].tolist())
            after = vocab.decode(with_fallback.decode(x, trained.decoding)[0].tolist())
        print(f"  {name}: today {today!r}; with fallback_frames 3: {after!r}")


if __name__ == "__main__":
    main()
