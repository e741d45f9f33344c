"""Scoring and prediction the way Kaggle's evaluator reads the data.

Each sequence is read with pandas from its parquet, restricted to the submission's
``selected_columns`` (as the evaluator does), and passed whole to the model: the TFLite runner, or
the PyTorch network through the training path (``fit_length`` + greedy decode) for comparison.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from aslfs_pl import vocab
from aslfs_pl.data.features import fit_length
from aslfs_pl.data.kaggle import DataError, SequenceIndex
from aslfs_pl.metrics import CompetitionScore
from aslfs_pl.model.seq2seq import Seq2Seq

log = logging.getLogger(__name__)


def kaggle_sequences(
    path: str, columns: list[str], sequence_ids: list[int] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """(sequence_id, frames (T, C) float32) of one parquet, read as the evaluator reads it."""
    try:
        df = pd.read_parquet(path, columns=columns)
    except Exception as err:
        raise DataError(f"{path}: cannot read the selected columns ({err})") from None
    if df.index.name != "sequence_id":
        raise DataError(f"{path}: expected sequence_id as the parquet's index")
    groups = {int(k): g for k, g in df.groupby(level=0, sort=False)}
    for sid in sequence_ids if sequence_ids is not None else list(groups):
        g = groups.get(int(sid))
        frames = np.zeros((0, len(columns)), np.float32) if g is None else g.to_numpy(np.float32)
        yield int(sid), frames


def torch_predictor(net: Seq2Seq) -> Callable[[np.ndarray], str]:
    """PyTorch greedy decoding of one sequence (the reference for the TFLite file)."""

    def predict(frames: np.ndarray) -> str:
        x = torch.from_numpy(fit_length(frames, net.config.max_frames))
        with torch.no_grad():
            tokens, _ = net.generate(x[None])
        return vocab.decode(tokens[0].tolist())

    return predict


@dataclass
class Scored:
    score: float
    sequences: int
    seconds_per_sequence: float
    predictions: dict[int, str]


def score(
    predictors: dict[str, Callable[[np.ndarray], str]],
    index: SequenceIndex,
    columns: list[str],
    progress: bool = True,
) -> dict[str, Scored]:
    """Competition score of each predictor on ``index`` (every predictor sees the same frames)."""
    metrics = {name: CompetitionScore() for name in predictors}
    seconds = dict.fromkeys(predictors, 0.0)
    preds: dict[str, dict[int, str]] = {name: {} for name in predictors}
    phrase = dict(zip(index.sequence_id.tolist(), index.phrase.tolist(), strict=True))
    files = list(dict.fromkeys(index.path.tolist()))
    done = 0
    for path in files:
        ids = index.sequence_id[index.path == path].tolist()
        for sid, frames in kaggle_sequences(path, columns, ids):
            for name, fn in predictors.items():
                t0 = time.perf_counter()
                text = fn(frames)
                seconds[name] += time.perf_counter() - t0
                preds[name][sid] = text
                metrics[name].update(text, phrase[sid])
            done += 1
        if progress:
            log.info("scored %d / %d sequences", done, len(index))
    return {
        name: Scored(
            float(metrics[name].compute()), done, seconds[name] / max(1, done), preds[name]
        )
        for name in predictors
    }
