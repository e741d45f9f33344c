"""Scoring and prediction the way Kaggle's evaluator reads the data.

Each sequence is read from its parquet, restricted to the submission's ``selected_columns``
(as the evaluator does), and passed whole to the model: the TFLite runner, or
the PyTorch network through the training path (``fit_length`` + the chosen decoding) for comparison.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aslfs_pl import vocab
from aslfs_pl.data.kaggle import SequenceIndex, read_sequences_table
from aslfs_pl.metrics import CompetitionScore
from aslfs_pl.model.features import fit_length
from aslfs_pl.model.seq2seq import Seq2Seq
from aslfs_pl.progress import bar


def kaggle_sequences(
    path: str, columns: list[str], sequence_ids: list[int] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """(sequence_id, frames (T, C) float32) of one parquet, as the evaluator passes them: the
    selected columns of each sequence's rows in file order, values as stored (NaN for nulls).

    ``sequence_id`` may be the parquet's index (Kaggle's files) or a plain column; the same
    reader as training (:func:`aslfs_pl.data.kaggle.read_sequences_table`).
    """
    ids, data = read_sequences_table(path, columns)
    order = np.argsort(ids, kind="stable")  # rows of each sequence together, file order kept
    uniq, first, counts = np.unique(ids[order], return_index=True, return_counts=True)
    rows = {int(u): order[a : a + n] for u, a, n in zip(uniq, first, counts, strict=True)}
    if sequence_ids is None:  # every sequence, in order of first appearance
        _, first_row = np.unique(ids, return_index=True)
        sequence_ids = ids[np.sort(first_row)].tolist()
    for sid in sequence_ids:
        picked = rows.get(int(sid))
        frames = np.zeros((0, len(columns)), np.float32) if picked is None else data[picked]
        yield int(sid), frames


def write_phrases(path: str | Path, rows: Iterable[tuple[int, str]]) -> int:
    """Kaggle's prediction csv: a ``sequence_id,phrase`` header, then ``rows``; returns their
    count."""
    n = 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sequence_id", "phrase"])
        for row in rows:
            writer.writerow(row)
            n += 1
    return n


def torch_predictor(net: Seq2Seq, decoding: str = "attention") -> Callable[[np.ndarray], str]:
    """PyTorch decoding of one sequence (the reference for the TFLite file)."""

    def predict(frames: np.ndarray) -> str:
        x = torch.from_numpy(fit_length(frames, net.config.max_frames))
        with torch.no_grad():
            tokens = net.decode(x[None], decoding)
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
    progress: bool | None = None,
) -> dict[str, Scored]:
    """Competition score of each predictor on ``index`` (every predictor sees the same frames).

    ``progress``: a bar over the sequences (None: when stderr is a terminal).
    """
    metrics = {name: CompetitionScore() for name in predictors}
    seconds = dict.fromkeys(predictors, 0.0)
    preds: dict[str, dict[int, str]] = {name: {} for name in predictors}
    phrase = dict(zip(index.sequence_id.tolist(), index.phrase.tolist(), strict=True))
    files = list(dict.fromkeys(index.path.tolist()))
    sequences = (
        item
        for path in files
        for item in kaggle_sequences(path, columns, index.sequence_id[index.path == path].tolist())
    )
    done = 0
    for sid, frames in bar(sequences, len(index), "scoring", progress):
        for name, fn in predictors.items():
            t0 = time.perf_counter()
            text = fn(frames)
            seconds[name] += time.perf_counter() - t0
            preds[name][sid] = text
            metrics[name].update(text, phrase[sid])
        done += 1
    return {
        name: Scored(
            float(metrics[name].compute()), done, seconds[name] / max(1, done), preds[name]
        )
        for name in predictors
    }
