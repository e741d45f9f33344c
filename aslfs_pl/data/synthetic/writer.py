"""Write a synthetic dataset in Kaggle's file layout: the character map, the CSVs, the parquets.

Each split draws its file ids, sequence ids, signers and edge cases from one generator, and each
sequence from its own (seed, split, index) generator, so a sequence does not depend on how the
split is cut into files.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aslfs_pl.data.landmarks import all_columns
from aslfs_pl.data.synthetic import difficulty as hard
from aslfs_pl.data.synthetic import signers
from aslfs_pl.data.synthetic.difficulty import Difficulty
from aslfs_pl.data.synthetic.participants import Participant, make_participants
from aslfs_pl.data.synthetic.phrases import random_phrase
from aslfs_pl.data.synthetic.render import NUM_LANDMARKS, SyntheticSequence, synthesize_sequence
from aslfs_pl.progress import bar
from aslfs_pl.vocab import CHAR_TO_INDEX, CHARACTERS, NUM_CHARACTERS

log = logging.getLogger(__name__)

_CSV_COLUMNS = ("path", "file_id", "sequence_id", "participant_id", "phrase")


@lru_cache(maxsize=1)
def _schema() -> pa.Schema:
    """Kaggle's schema (sequence_id, frame, 1,629 float32) with pandas index metadata."""
    import pandas as pd

    cols = all_columns()
    df = pd.DataFrame(np.zeros((1, len(cols)), np.float32), columns=cols)
    df.insert(0, "frame", np.zeros(1, np.int16))
    df.index = pd.Index(np.zeros(1, np.int64), name="sequence_id")
    meta = pa.Schema.from_pandas(df, preserve_index=True).metadata
    fields = [pa.field("sequence_id", pa.int64()), pa.field("frame", pa.int16())]
    fields += [pa.field(c, pa.float32()) for c in cols]
    return pa.schema(fields, metadata=meta)


def _write_parquet(path: Path, seqs: list[tuple[int, SyntheticSequence]]) -> int:
    """Write sequences (``(sequence_id, sequence)``) as one Kaggle landmark file; returns rows.

    Empties ``seqs`` once their frames are copied, so their memory is freed while encoding.
    """
    lengths = [s.num_frames for _, s in seqs]
    rows = int(sum(lengths))
    ncol = 3 * NUM_LANDMARKS
    data = np.empty((ncol, rows), np.float32)  # (1629, N) column-major, one array per column
    seq_col = np.empty(rows, np.int64)
    frame_col = np.empty(rows, np.int16)
    r = 0
    for (sid, s), T in zip(seqs, lengths, strict=True):
        data[:, r : r + T] = s.columns.reshape(ncol, T)  # axis-major, as all_columns()
        seq_col[r : r + T] = sid
        frame_col[r : r + T] = np.arange(T)
        r += T
    seqs.clear()
    arrays = [pa.array(seq_col), pa.array(frame_col)] + [pa.array(data[i]) for i in range(ncol)]
    table = pa.Table.from_arrays(arrays, schema=_schema())
    pq.write_table(table, path, use_dictionary=["sequence_id", "frame"], compression="snappy")
    return rows


def _unique_ints(rng: np.random.Generator, n: int, lo: int, hi: int, taken: set[int]) -> list[int]:
    """``n`` ints in ``lo..hi-1`` not in ``taken`` (which they join): ids unique across splits."""
    out: list[int] = []
    while len(out) < n:
        for v in rng.integers(lo, hi, n - len(out) + 8).tolist():
            if v not in taken and len(out) < n:
                taken.add(v)
                out.append(v)
    return out


def _edge_cases(rng: np.random.Generator, num: int) -> dict[int, tuple[str, int]]:
    """Positions of the edge cases: one 1-frame sequence, one of ~800 and three of 420..640."""
    pos = rng.choice(num, size=5, replace=False).tolist()
    special = {pos[0]: ("single", 1), pos[1]: ("long", int(rng.integers(800, 808)))}
    for p in pos[2:]:
        special[p] = ("long", int(rng.integers(420, 641)))
    return special


def _make_sequence(
    seed: int,
    split_id: int,
    i: int,
    participant: Participant,
    special: tuple[str, int],
    difficulty: Difficulty,
    seq_kwargs: dict,
) -> tuple[str, SyntheticSequence]:
    """Sequence ``i`` of a split and its label (not always what it signs, with ``label_noise``).

    ``special`` is ``(kind, frames)``: a "single" frame, a "long" sequence of ``frames`` frames
    (a phrase of 20+ characters), or a "normal" one.
    """
    srng = np.random.default_rng([seed, split_id, 2, i])
    kind, frames = special
    key = (seed, split_id, i)
    kwargs = {"difficulty": difficulty, "key": key, **seq_kwargs}
    if kind == "single":
        phrase = CHARACTERS[int(srng.integers(33, NUM_CHARACTERS - 1))]  # a letter
        return phrase, synthesize_sequence(phrase, participant, srng, single_frame=True, **kwargs)
    supplemental = split_id == 1
    phrase = random_phrase(srng, supplemental=supplemental)
    if kind == "long":
        while len(phrase) < 20:
            phrase = random_phrase(srng, supplemental=supplemental)
    signed, label = hard.labelled(
        difficulty, key, phrase, lambda rng: random_phrase(rng, supplemental=supplemental)
    )
    seq = synthesize_sequence(signed, participant, srng, target_frames=frames or None, **kwargs)
    return label, seq


@dataclass
class _Split:
    """One split to write (train or supplemental)."""

    out_dir: Path
    folder: str
    csv_name: str
    num: int
    split_id: int
    edge_cases: bool


@dataclass
class _Written:
    """What a split's sequences were: the rows of its csv and the summary's counts."""

    rows: list = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    phrase_lens: list[int] = field(default_factory=list)
    left: int = 0
    mislabelled: int = 0


def _write_split(s: _Split, seq_kwargs: dict, shared: dict) -> dict:
    """Generate and write one split (train or supplemental), its sequences rendered with
    ``seq_kwargs``; ``shared``: what every split of the dataset shares (seed, participants, the
    ids taken, sequences per file, difficulty). Returns the split's summary."""
    seed, participants, per_file = (
        shared["seed"],
        shared["participants"],
        shared["sequences_per_file"],
    )
    taken = shared["taken_ids"]
    rng = np.random.default_rng([seed, s.split_id, 1])
    (s.out_dir / s.folder).mkdir(parents=True, exist_ok=True)
    n_files = max(1, math.ceil(s.num / per_file)) if s.num else 0
    file_ids = sorted(_unique_ints(rng, n_files, 1_000_000, 2_147_483_647, taken))
    seq_ids = _unique_ints(rng, s.num, 1_000_000, 2_147_483_647, taken)
    # Participants: each appears once first (so small sets see both hands), then by weight.
    w = np.array([p.weight for p in participants])
    first = rng.permutation(len(participants))[: s.num]
    rest = rng.choice(len(participants), s.num - len(first), p=w / w.sum())
    who = np.concatenate([first, rest])
    special = _edge_cases(rng, s.num) if s.edge_cases and s.num >= 8 else {}
    done = _Written()
    # Parquet encoding releases the GIL: write file f in a thread while generating file f + 1.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future | None = None
        for f in bar(range(n_files), n_files, f"writing {s.folder}"):
            chunk = []
            for i in range(f * per_file, min(s.num, (f + 1) * per_file)):
                part = participants[int(who[i])]
                kind = special.get(i, ("normal", 0))
                phrase, seq = _make_sequence(
                    seed, s.split_id, i, part, kind, shared["difficulty"], seq_kwargs
                )
                done.mislabelled += seq.phrase != phrase  # signed something else (label_noise)
                chunk.append((seq_ids[i], seq))
                done.lengths.append(seq.num_frames)
                done.phrase_lens.append(len(phrase))
                done.left += int(part.left_handed)
                path = f"{s.folder}/{file_ids[f]}.parquet"
                done.rows.append((path, file_ids[f], seq_ids[i], part.participant_id, phrase))
            path = s.out_dir / s.folder / f"{file_ids[f]}.parquet"
            if pending is not None:
                pending.result()
            pending = pool.submit(_write_parquet, path, chunk)
            done.files.append(str(path.relative_to(s.out_dir)))
        if pending is not None:
            pending.result()
    _write_csv(s, done)
    return _summary(s, done)


def _write_csv(s: _Split, done: _Written) -> None:
    """The split's index csv; a warning for parquet files of its folder the csv does not list."""
    written = {Path(f).name for f in done.files}
    stale = [p for p in (s.out_dir / s.folder).glob("*.parquet") if p.name not in written]
    if stale:
        log.warning(
            "%s holds %d parquet files not listed in %s (from an earlier run?)",
            s.out_dir / s.folder,
            len(stale),
            s.csv_name,
        )
    with open(s.out_dir / s.csv_name, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(_CSV_COLUMNS)
        writer.writerows(done.rows)


def _summary(s: _Split, done: _Written) -> dict:
    arr = np.array(done.lengths) if done.lengths else np.zeros(1)
    return {
        "num_sequences": s.num,
        "num_frames": int(np.sum(done.lengths)) if done.lengths else 0,
        "files": done.files,
        "csv": s.csv_name,
        "mean_frames": float(arr.mean()),
        "median_frames": float(np.median(arr)),
        "min_frames": int(arr.min()),
        "max_frames": int(arr.max()),
        "mean_phrase_len": float(np.mean(done.phrase_lens)) if done.phrase_lens else 0.0,
        "left_handed_fraction": done.left / max(s.num, 1),
        "mislabelled": done.mislabelled,
    }


@dataclass
class SyntheticOptions:
    """How :func:`write_synthetic_dataset` draws the sequences."""

    seed: int = 0
    """Seed of phrases, participants and sequences (the shape alphabet is fixed)."""
    supplemental_sequences: int = 0
    """Number of supplemental sequences (0: none written)."""
    sequences_per_file: int = 250
    """Sequences per parquet file."""
    min_frames_per_char: int = 2
    """Fewest hold frames per character before the speed scaling."""
    max_frames_per_char: int = 9
    """Most hold frames per character before the speed scaling."""
    num_participants: int | None = None
    """Number of signers (default: 12..18, drawn from ``seed``)."""
    left_handed_fraction: float = 0.25
    """Fraction of left-handed participants."""
    drop_fraction: tuple[float, float] = (0.05, 0.30)
    """Range of the per-sequence fraction of frames without the dominant hand."""
    noise_scale: float = 1.0
    """Multiplier of the jitter noise."""
    edge_cases: bool = True
    """With ``num_sequences >= 8``, place a 1-frame sequence, one of 800..807 frames and three of
    420..640 frames in the train split."""
    difficulty: Difficulty | str = "plain"
    """A :class:`Difficulty` or a preset name ("plain", "hard"); see
    :mod:`aslfs_pl.data.synthetic.difficulty`."""

    def __post_init__(self) -> None:
        if self.supplemental_sequences < 0:
            raise ValueError("sequence counts must be >= 0")
        if self.sequences_per_file < 1:
            raise ValueError("sequences_per_file must be >= 1")
        if not 1 <= self.min_frames_per_char <= self.max_frames_per_char:
            raise ValueError("need 1 <= min_frames_per_char <= max_frames_per_char")
        if isinstance(self.difficulty, str):
            self.difficulty = Difficulty.preset(self.difficulty)

    def sequence_kwargs(self, noise: float = 1.0) -> dict:
        """What every sequence of a split is rendered with (``noise`` x the noise scale)."""
        return {
            "min_frames_per_char": self.min_frames_per_char,
            "max_frames_per_char": self.max_frames_per_char,
            "drop_fraction": self.drop_fraction,
            "noise_scale": noise * self.noise_scale,
        }


def write_synthetic_dataset(out_dir: str | Path, num_sequences: int, **options: Any) -> dict:
    """Write a synthetic dataset in Kaggle's layout under ``out_dir`` (created if needed):
    ``num_sequences`` train sequences drawn as :class:`SyntheticOptions` ``options`` say.

    Writes ``character_to_prediction_index.json``, ``train.csv`` and
    ``train_landmarks/<file_id>.parquet``; with ``supplemental_sequences > 0`` also
    ``supplemental_metadata.csv`` and ``supplemental_landmarks/<file_id>.parquet`` (sentence-like
    phrases, 1.5x the noise, same participants). Deterministic under ``seed``.

    Returns:
        Summary: ``out_dir``, ``num_participants``, ``train`` and (if written) ``supplemental``
        dicts with counts, frame statistics, phrase length, left-handed fraction and files.
    """
    o = SyntheticOptions(**options)
    if num_sequences < 0:
        raise ValueError("sequence counts must be >= 0")
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "character_to_prediction_index.json", "w", encoding="utf-8") as fh:
        json.dump(CHAR_TO_INDEX, fh)
    prng = np.random.default_rng([o.seed, 99])
    n_part = int(o.num_participants or prng.integers(12, 19))
    styles = signers.signer_styles(o.difficulty, o.seed)
    shared = dict(
        seed=o.seed,
        participants=make_participants(prng, n_part, o.left_handed_fraction, styles),
        taken_ids=set(),
        sequences_per_file=o.sequences_per_file,
        difficulty=o.difficulty,
    )
    summary: dict = {"out_dir": str(out), "num_participants": n_part}
    summary["difficulty"] = o.difficulty.describe()
    train = _Split(out, "train_landmarks", "train.csv", num_sequences, 0, o.edge_cases)
    summary["train"] = _write_split(train, o.sequence_kwargs(), shared)
    if o.supplemental_sequences > 0:
        names = ("supplemental_landmarks", "supplemental_metadata.csv")
        sup = _Split(out, *names, o.supplemental_sequences, 1, False)
        summary["supplemental"] = _write_split(sup, o.sequence_kwargs(noise=1.5), shared)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    log.info(
        "wrote %d train + %d supplemental synthetic sequences to %s in %.1fs",
        num_sequences,
        o.supplemental_sequences,
        out,
        summary["seconds"],
    )
    return summary
