"""Shared fixtures: synthetic Kaggle-format datasets written to tmp dirs (CPU only, no network)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aslfs_pl.data.landmarks import LandmarkSet

os.environ.setdefault("PJRT_DEVICE", "CPU")


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """A small dataset from the project's synthetic writer (shared by the session's tests)."""
    from aslfs_pl.data.synthetic import write_synthetic_dataset

    out = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(out, num_sequences=120, seed=0, sequences_per_file=30)
    return out


def write_mini_dataset(
    root: Path,
    sequences: dict[str, list[tuple[int, int, str, np.ndarray]]],
    columns: list[str] | None = None,
) -> Path:
    """Write a hand-made Kaggle-layout dataset.

    Args:
        root: dataset root.
        sequences: parquet stem -> [(sequence_id, participant_id, phrase, frames (T, C))].
        columns: landmark columns written (default: the default LandmarkSet's).
    """
    columns = columns or LandmarkSet().selected_columns
    (root / "train_landmarks").mkdir(parents=True, exist_ok=True)
    rows = []
    for stem, seqs in sequences.items():
        ids, frames_col, data = [], [], []
        for sid, pid, phrase, frames in seqs:
            rows.append((f"train_landmarks/{stem}.parquet", stem, sid, pid, phrase))
            ids += [sid] * len(frames)
            frames_col += list(range(len(frames)))
            data.append(frames.reshape(len(frames), -1))
        arr = np.concatenate(data) if data else np.zeros((0, len(columns)), np.float32)
        table = pa.table(
            {"sequence_id": pa.array(ids, pa.int64()), "frame": pa.array(frames_col, pa.int16())}
            | {c: pa.array(arr[:, j], pa.float32()) for j, c in enumerate(columns)}
        )
        pq.write_table(table, root / "train_landmarks" / f"{stem}.parquet")
    with open(root / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "file_id", "sequence_id", "participant_id", "phrase"])
        w.writerows(rows)
    return root


def random_frames(rng: np.random.Generator, t: int, c: int | None = None) -> np.ndarray:
    c = c or LandmarkSet().num_columns
    return rng.uniform(0.2, 0.8, size=(t, c)).astype(np.float32)
