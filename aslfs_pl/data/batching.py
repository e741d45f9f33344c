"""Batches of a few fixed shapes: length buckets, grouping by bucket, padding and collation.

Sequences of similar lengths are batched together and padded to the smallest bucket that holds
the longest of them, so the padding stays small and a compiler (XLA) sees one shape per bucket;
a sequence longer than the last bucket (``max_frames``) is resampled to it
(:func:`~aslfs_pl.model.features.fit_length`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

import numpy as np
import torch

from aslfs_pl import vocab
from aslfs_pl.model.features import fit_length


def encode_target(phrase: str, max_target_len: int) -> np.ndarray:
    """[sos, c1..cn, eos, pad...] of length ``max_target_len + 1`` (decoder input + target)."""
    ids = [vocab.SOS, *vocab.encode(phrase), vocab.EOS]
    out = np.full(max_target_len + 1, vocab.PAD, np.int64)
    out[: len(ids)] = ids
    return out


def bucket_lengths(max_frames: int, buckets: list[int] | None = None, width: int = 32) -> tuple:
    """The frame counts batches are padded to: ``buckets`` (sorted, each in 1..max_frames),
    with ``max_frames`` added as the last; None: every ``width`` frames up to ``max_frames``;
    ``[]``: ``max_frames`` alone, one fixed length.

    Raises:
        ValueError: naming ``data.buckets``.
    """
    if buckets is None:
        buckets = list(range(width, max_frames, width))
    buckets = list(buckets)
    if buckets != sorted(set(buckets)) or any(not 1 <= b <= max_frames for b in buckets):
        raise ValueError(
            f"data.buckets = {buckets}: frame counts must be distinct, sorted and in 1..max_frames"
            f" ({max_frames})"
        )
    return tuple(b for b in buckets if b < max_frames) + (max_frames,)


def bucket_of(length: int, buckets: tuple[int, ...]) -> int:
    """Index of the smallest bucket holding ``length`` frames (the last for longer ones, which
    are resampled to it)."""
    return min(bisect.bisect_left(buckets, length), len(buckets) - 1)


class Batcher:
    """Groups a stream's items (dicts with ``frames`` (T, C) or None for an empty row,
    ``phrase``, ``sequence_id``, ``skipped``) into batches by length bucket, and collates them.

    Args:
        buckets: the frame counts a batch may be padded to (:func:`bucket_lengths`).
        batch_size: rows per batch.
        num_columns: columns per frame.
        max_target_len: target tokens per row (phrase + eos, padded).
    """

    def __init__(
        self, buckets: tuple[int, ...], batch_size: int, num_columns: int, max_target_len: int
    ):
        self.buckets, self.batch_size = buckets, batch_size
        self.num_columns, self.max_target_len = num_columns, max_target_len

    def _length(self, item: dict) -> int:
        return 0 if item["frames"] is None else len(item["frames"])

    def _row(self, item: dict, frames_out: int) -> tuple[np.ndarray, np.ndarray, int, int, bool]:
        c = self.num_columns
        if item["frames"] is None:
            frames = np.full((frames_out, c), np.nan, np.float32)
            return (
                frames,
                np.full(self.max_target_len + 1, vocab.PAD, np.int64),
                item["sequence_id"],
                0,
                item.get("skipped", False),
            )
        frames = item["frames"]
        target = encode_target(item["phrase"], self.max_target_len)
        return fit_length(frames, frames_out), target, item["sequence_id"], len(frames), False

    def collate(self, items: list[dict]) -> dict[str, torch.Tensor]:
        """A batch of items padded to the bucket of its longest sequence: tensors."""
        frames_out = self.buckets[bucket_of(max(map(self._length, items)), self.buckets)]
        rows = [self._row(it, frames_out) for it in items]
        return {
            "landmarks": torch.from_numpy(np.stack([r[0] for r in rows])),  # (B, F, C)
            "tokens": torch.from_numpy(np.stack([r[1] for r in rows])),  # (B, L + 1)
            "sequence_id": torch.tensor([r[2] for r in rows], dtype=torch.int64),  # (B,)
            "num_frames": torch.tensor([r[3] for r in rows], dtype=torch.int64),  # (B,)
            "skipped": torch.tensor([r[4] for r in rows], dtype=torch.bool),  # (B,) skip policy
        }

    def grouped(self, items: Iterator[dict]) -> Iterator[list[dict]]:
        """Batches of ``batch_size`` items, each from one length bucket while the shard lasts,
        then the items left in the buckets in bucket order; the last one may be partial."""
        waiting: list[list[dict]] = [[] for _ in self.buckets]
        for item in items:
            bucket = waiting[bucket_of(self._length(item), self.buckets)]
            bucket.append(item)
            if len(bucket) == self.batch_size:
                yield list(bucket)
                bucket.clear()
        left = [item for bucket in waiting for item in bucket]
        for start in range(0, len(left), self.batch_size):
            yield left[start : start + self.batch_size]
