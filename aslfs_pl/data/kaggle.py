"""Reading Kaggle's ASL-fingerspelling files: the csv index and the landmark parquets.

Only the selected landmark columns are read from disk (pyarrow column projection). Problems are
reported by file and sequence:

- index level (checked once, in the main process): an empty or malformed csv, a missing or
  unreadable parquet, missing landmark columns -> :class:`DataError` naming the file;
  a phrase with a character outside the map, or too long for ``max_target_len`` -> the row is
  skipped, and the number skipped per reason is logged; a ``sequence_id`` listed more than once
  (in one csv or across train and supplemental) -> the first row is kept, the others are
  dropped, and their count and ids are logged.
- value level (every file read): a coordinate that is not finite or lies beyond
  :data:`MAX_COORDINATE` in magnitude (MediaPipe's normalised coordinates stay within a few
  units) becomes missing (NaN), like a landmark MediaPipe did not see; the count per file is
  logged. The model's features apply the same rule
  (:func:`aslfs_pl.model.features.as_missing_if_absurd`), so the exported model reading a raw
  Kaggle file treats such values alike.
- sequence level (found while streaming, in a worker): a csv sequence absent from its parquet, a
  sequence with 0 frames, a parquet that fails to decode -> the sequence becomes an empty row
  (no frames, no target: it counts for nothing in loss or metrics, so batch counts stay fixed) and
  is counted; each shard logs its counts per reason with its last batch, and the task logs the
  number of such rows per epoch as the metric ``train/skipped`` / ``val/skipped``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq

from aslfs_pl import vocab
from aslfs_pl.model.features import MAX_COORDINATE

log = logging.getLogger(__name__)

INDEX_COLUMNS = ("path", "file_id", "sequence_id", "participant_id", "phrase")
INDEX_FILES = {"train": "train.csv", "supplemental": "supplemental_metadata.csv"}


class DataError(ValueError):
    """A dataset file is missing, unreadable or malformed; the message names it."""


@dataclass
class SequenceIndex:
    """The csv rows kept for training, as parallel numpy arrays (one entry per sequence)."""

    path: np.ndarray  # (N,) object: absolute parquet path
    sequence_id: np.ndarray  # (N,) int64
    participant_id: np.ndarray  # (N,) int64
    phrase: np.ndarray  # (N,) object: str
    source: np.ndarray  # (N,) object: the index csv it came from ("train", "supplemental")

    def __len__(self) -> int:
        return len(self.sequence_id)

    def subset(self, keep: np.ndarray) -> SequenceIndex:
        return SequenceIndex(
            self.path[keep],
            self.sequence_id[keep],
            self.participant_id[keep],
            self.phrase[keep],
            self.source[keep],
        )


def read_csv_index(csv_path: Path) -> pa.Table:
    """One Kaggle index csv as a table with the five expected columns."""
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: index csv not found")
    try:
        table = pv.read_csv(
            csv_path,
            convert_options=pv.ConvertOptions(
                column_types={
                    "path": pa.string(),
                    "file_id": pa.string(),
                    "sequence_id": pa.int64(),
                    "participant_id": pa.int64(),
                    "phrase": pa.string(),
                },
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise DataError(f"{csv_path}: cannot parse as a Kaggle index csv: {err}") from None
    missing = [c for c in INDEX_COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"{csv_path}: missing columns {missing} (has {table.column_names})")
    if table.num_rows == 0:
        raise DataError(f"{csv_path}: no sequences listed")
    return table.select(list(INDEX_COLUMNS))


def load_index(
    data_dir: str | Path,
    sources: tuple[str, ...] = ("train",),
    max_phrase_len: int = 31,
) -> SequenceIndex:
    """Read the index csv(s) of ``data_dir``, drop unusable rows (logged), check every parquet.

    Args:
        data_dir: the dataset root (holding train.csv and train_landmarks/).
        sources: which csvs: "train" (train.csv) and/or "supplemental".
        max_phrase_len: longest phrase kept (characters, without start/end tokens).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: data directory not found")
    tables, source = [], []
    for src in sources:
        if src not in INDEX_FILES:
            raise DataError(f"unknown data source {src!r}; choose from {sorted(INDEX_FILES)}")
        tables.append(read_csv_index(root / INDEX_FILES[src]))
        source += [src] * tables[-1].num_rows
    table = pa.concat_tables(tables)
    phrases = table.column("phrase").to_pylist()
    bad_char = np.array([any(c not in vocab.CHAR_TO_INDEX for c in p) for p in phrases], bool)
    lengths = np.array([len(p) for p in phrases])
    too_long, empty = lengths > max_phrase_len, lengths == 0
    for count, why in (
        (bad_char.sum(), "a character outside the 59-character map"),
        ((too_long & ~bad_char).sum(), f"a phrase longer than {max_phrase_len} characters"),
        ((empty & ~bad_char).sum(), "an empty phrase"),
    ):
        if count:
            log.warning("skipping %d of %d sequences with %s", count, len(phrases), why)
    ids = table.column("sequence_id").to_numpy()
    _, first = np.unique(ids, return_index=True)
    repeated = np.ones(len(ids), bool)
    repeated[first] = False  # every row after the first of its sequence_id
    if repeated.any():
        shown = sorted(set(ids[repeated].tolist()))
        log.warning(
            "dropping %d index rows whose sequence_id is listed earlier (the first row is "
            "kept): ids %s%s",
            repeated.sum(),
            shown[:10],
            " ..." if len(shown) > 10 else "",
        )
    keep = ~(bad_char | too_long | empty | repeated)
    paths = np.array([str(root / p) for p in table.column("path").to_pylist()], object)
    index = SequenceIndex(
        path=paths,
        sequence_id=ids,
        participant_id=table.column("participant_id").to_numpy(),
        phrase=np.array(phrases, object),
        source=np.array(source, object),
    ).subset(keep)
    if len(index) == 0:
        raise DataError(f"{root}: no usable sequence left after filtering the index")
    return index


def missing_if_absurd(data: np.ndarray, where: str) -> np.ndarray:
    """Values that are not finite or beyond :data:`MAX_COORDINATE` -> NaN (count logged)."""
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(data) <= MAX_COORDINATE) & ~np.isnan(data)
    if bad.any():
        log.warning(
            "%s: %d values not finite or beyond +-%g read as missing landmarks",
            where,
            int(bad.sum()),
            MAX_COORDINATE,
        )
        data = np.where(bad, np.float32(np.nan), data)
    return data


def read_sequences_table(path: str | Path, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``sequence_id`` per row and the ``columns`` (float32, NaN for nulls) of one parquet,
    whether ``sequence_id`` is a column or the index pandas wrote (Kaggle's files).

    Raises:
        DataError: naming the file.
    """
    try:
        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        if "sequence_id" not in names:
            raise DataError(f"{path}: no sequence_id column or index")
        table = pf.read(columns=["sequence_id", *columns])
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: landmark parquet not found") from None
    except (pa.ArrowInvalid, OSError, KeyError) as err:
        raise DataError(f"{path}: cannot read the selected columns ({err})") from None
    return table.column("sequence_id").to_numpy(), _as_float32(table, columns)


def _as_float32(table: pa.Table, columns: list[str]) -> np.ndarray:
    """(rows, C) float32 of ``columns``, parquet nulls as NaN."""
    if not table.num_rows:
        return np.empty((0, len(columns)), np.float32)
    feats = table.select(columns).cast(pa.schema([(c, pa.float32()) for c in columns]))
    return np.asarray(
        feats.combine_chunks().to_batches()[0].to_tensor(null_to_nan=True, row_major=True)
    )


def check_parquet(path: str | Path, columns: list[str]) -> None:
    """Raise :class:`DataError` if ``path`` is missing, unreadable or lacks ``columns``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: landmark parquet listed in the index but not found")
    try:
        schema = pq.read_schema(path)
    except Exception as err:  # pyarrow raises several types for a damaged footer
        raise DataError(f"{path}: not a readable parquet file ({err})") from None
    names = set(schema.names)
    missing = [c for c in ["sequence_id", "frame", *columns] if c not in names]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(f"{path}: missing columns {missing[:5]}{more}")


@dataclass
class LandmarkFile:
    """The selected columns of one parquet, rows grouped by sequence and ordered by frame."""

    data: np.ndarray  # (rows, C) float32
    starts: dict[int, tuple[int, int]]  # sequence_id -> (first row, end row)

    def frames(self, sequence_id: int) -> np.ndarray | None:
        """(T, C) frames of one sequence, or None when the file does not hold it."""
        span = self.starts.get(int(sequence_id))
        return None if span is None else self.data[span[0] : span[1]]


def read_landmark_file(path: str | Path, columns: list[str]) -> LandmarkFile:
    """Read ``columns`` (plus sequence_id and frame) of one parquet.

    Raises:
        DataError: naming the file when it cannot be read or lacks a column.
    """
    try:
        table = pq.ParquetFile(path).read(columns=["sequence_id", "frame", *columns])
    except FileNotFoundError:
        raise DataError(f"{path}: landmark parquet not found") from None
    except (pa.ArrowInvalid, OSError, KeyError) as err:
        raise DataError(f"{path}: cannot read landmark columns ({err})") from None
    seq = table.column("sequence_id").to_numpy()
    frame = table.column("frame").to_numpy()
    change = np.flatnonzero(np.diff(seq) != 0) + 1  # first row of every run of one sequence id
    grouped = len(change) + 1 == len(np.unique(seq)) if len(seq) else True
    frames_ascend = np.all((np.diff(frame) > 0) | (np.diff(seq) != 0))
    if not (grouped and frames_ascend):  # rows of a sequence scattered or out of frame order
        order = pc.sort_indices(
            table.select(["sequence_id", "frame"]),
            sort_keys=[("sequence_id", "ascending"), ("frame", "ascending")],
        )
        table = table.take(order)
        seq = table.column("sequence_id").to_numpy()
        change = np.flatnonzero(np.diff(seq) != 0) + 1
    data = missing_if_absurd(_as_float32(table, columns), str(path))
    first = np.concatenate([[0], change]).astype(np.int64) if len(seq) else np.zeros(0, np.int64)
    ends = np.append(first[1:], len(seq))
    starts = {int(seq[a]): (int(a), int(b)) for a, b in zip(first, ends, strict=True)}
    return LandmarkFile(data=data, starts=starts)
