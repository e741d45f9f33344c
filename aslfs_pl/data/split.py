"""The train / validation split: a pure function of the index and the split settings.

Whole groups (participants, or parquet files) are held out, never frames or sequences of a group
that is also trained on. The same index and settings give the same split in training, in
``scripts/evaluate.py --split val`` and anywhere else; every input it depends on (the index's
``sources``, the phrase-length filter, ``val_by``, ``val_fraction``, ``val_ids``, ``seed``) is a
data module setting recorded in the checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aslfs_pl.data.kaggle import DataError, SequenceIndex

GROUPINGS = ("participant", "file")


def split_index(
    index: SequenceIndex,
    val_by: str = "participant",
    val_fraction: float = 0.1,
    val_ids: list | None = None,
    seed: int = 42,
) -> tuple[SequenceIndex, SequenceIndex]:
    """(train, validation) of ``index``.

    Args:
        index: all sequences (from :func:`aslfs_pl.data.kaggle.load_index`).
        val_by: hold out whole "participant"s or whole "file"s.
        val_fraction: share of the groups held out (at least one when > 0).
        val_ids: explicit group ids to hold out; overrides ``val_fraction``.
        seed: seed of the random choice of groups.

    Raises:
        DataError: unknown ``val_ids``, or too few groups to hold any out.
    """
    if val_by not in GROUPINGS:
        raise ValueError(f"data.val_by = {val_by!r}: choose 'participant' or 'file'")
    if val_by == "participant":
        groups = index.participant_id
    else:
        groups = np.array([Path(p).stem for p in index.path], object)
    uniq = np.unique(groups)
    if val_ids is not None:
        wanted = {str(v) for v in val_ids}
        held = np.array([g for g in uniq if str(g) in wanted], object)
        if len(held) != len(wanted):
            raise DataError(f"data.val_ids {val_ids}: some ids are not in the index")
    else:
        n_val = int(round(len(uniq) * val_fraction))
        if val_fraction > 0 and n_val == 0:
            n_val = 1
        if n_val >= len(uniq) and n_val > 0:
            raise DataError(f"only {len(uniq)} {val_by}(s): cannot hold out {n_val} for validation")
        held = np.random.default_rng(seed).permutation(uniq)[:n_val]
    is_val = np.isin(groups.astype(str), np.asarray(held).astype(str))
    return index.subset(~is_val), index.subset(is_val)
