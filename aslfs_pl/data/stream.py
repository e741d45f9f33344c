"""The training and evaluation stream of one replica: Kaggle parquet files into augmented
batches of a few fixed shapes (length buckets), sharded over replicas and workers.

Streaming and sharding (one epoch):

1. The epoch's order: files shuffled, then the sequences inside each file shuffled, all seeded by
   (seed, epoch) so every process computes the same order without talking to the others.
2. That order is cut into ``world_size * num_workers`` contiguous, equal shards; shard
   ``rank * num_workers + worker`` belongs to one DataLoader worker of one replica. Contiguity keeps
   reads local: a shard opens only its own files, and a file is read by at most a few shards.
   Training drops the < (shards) sequences left over; evaluation pads shards with empty rows.
3. Each worker reads its files one at a time (selected columns only), passes sequences through a
   shuffle buffer and augments them, then groups them by length (:mod:`aslfs_pl.data.batching`): a batch is
   emitted as soon as one length bucket holds ``batch_size`` sequences, and is padded to that
   bucket's length, so a batch holds sequences of similar lengths and the accelerator sees one
   of a few fixed shapes. At the shard's end the sequences left in the buckets are batched in
   bucket order. Training drops a partial last batch (evaluation pads it with empty rows), so
   every replica yields exactly ``len(dataset)`` batches: XLA and DDP need that. A sequence
   longer than ``max_frames`` (the largest bucket) is resampled to it; with one bucket
   (``buckets == (max_frames,)``) every batch is padded to ``max_frames`` in arrival order.

An empty row (no frames, all-pad target) stands in for a sequence that could not be used (see
:mod:`aslfs_pl.data.kaggle`); loss, accuracy and score ignore it.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from aslfs_pl.data.augment import AugmentConfig, Augmenter, BatchLimits
from aslfs_pl.data.batching import Batcher, bucket_lengths
from aslfs_pl.data.kaggle import (
    DataError,
    LandmarkFile,
    SequenceIndex,
    read_landmark_file,
)
from aslfs_pl.data.landmarks import LandmarkSet

log = logging.getLogger(__name__)


def landmark_dict(landmarks: LandmarkSet) -> dict[str, list]:
    """The init fields of a LandmarkSet as plain lists (for hparams and checkpoints)."""
    return {k: list(v) for k, v in asdict(landmarks).items() if k != "points"}


class LandmarkStream(IterableDataset):
    """Streams batches of one split; see the module docstring for the sharding scheme.

    Args:
        index: the split's sequences.
        landmarks: which columns to read.
        batch_size: rows per batch.
        max_frames: frames per row (resampled / NaN-padded).
        max_target_len: target tokens per row (phrase + eos, padded).
        train: shuffle, augment, drop leftovers (else: fixed order, pad with empty rows).
        augment: augmentation settings (used when ``train``).
        seed: base seed of order and augmentation.
        shuffle_buffer: sequences held for in-worker shuffling (train only).
        num_workers: DataLoader workers per replica (0 counts as 1).
        min_frames_per_char: training skips sequences with fewer frames per phrase character.
        buckets: the frame counts a batch may be padded to, sorted, the last ``max_frames``
            (:func:`bucket_lengths`); default: ``max_frames`` only.
    """

    def __init__(
        self,
        index: SequenceIndex,
        landmarks: LandmarkSet,
        batch_size: int,
        max_frames: int,
        max_target_len: int,
        train: bool,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        num_workers: int = 0,
        min_frames_per_char: float = 0.0,
        buckets: tuple[int, ...] | None = None,
    ):
        self.index = index
        self.landmarks = landmarks
        self.columns = landmarks.selected_columns
        self.batch_size = batch_size
        self.max_frames = max_frames
        self.max_target_len = max_target_len
        self.train = train
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.num_workers = max(1, num_workers)
        self.min_frames_per_char = min_frames_per_char
        self.buckets = bucket_lengths(max_frames, list(buckets or ()))
        self.batcher = Batcher(self.buckets, batch_size, len(self.columns), max_target_len)
        self.rank, self.world_size, self.epoch = 0, 1, 0
        self.first_epoch: int | None = None  # the run's first epoch: the skip report's
        parts = landmarks.part_slices()
        self._hand_points = parts.get("left_hand", []) + parts.get("right_hand", [])
        self.augmenter = (
            Augmenter(augment or AugmentConfig(), landmarks.mirror_permutation(), parts)
            if train
            else None
        )

    # -- sharding -------------------------------------------------------------------------------
    def set_distributed(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.first_epoch is None:  # in the main process, before the workers copy the stream
            self.first_epoch = epoch

    @property
    def num_shards(self) -> int:
        return self.world_size * self.num_workers

    def shard_size(self) -> int:
        n, s = len(self.index), self.num_shards
        return n // s if self.train else math.ceil(n / s)

    def batches_per_shard(self) -> int:
        n, b = self.shard_size(), self.batch_size
        return n // b if self.train else math.ceil(n / b)

    def __len__(self) -> int:
        """Batches per replica per epoch (the same on every replica)."""
        return self.num_workers * self.batches_per_shard()

    def epoch_order(self) -> np.ndarray:
        """Row positions of the whole split in this epoch's order (same in every process)."""
        if not self.train:
            return np.arange(len(self.index))
        rng = np.random.default_rng([self.seed, self.epoch])
        files, inverse = np.unique(self.index.path, return_inverse=True)
        order = []
        for f in rng.permutation(len(files)):
            rows = np.flatnonzero(inverse == f)
            order.append(rows[rng.permutation(len(rows))])
        return np.concatenate(order)

    def shard(self, shard_id: int) -> list[int | None]:
        """Row positions of one shard; None marks a padding (empty) row."""
        n = self.shard_size()
        rows: list[int | None] = list(self.epoch_order()[shard_id * n : (shard_id + 1) * n])
        if not self.train:
            rows += [None] * (n - len(rows))
        return rows

    # -- reading --------------------------------------------------------------------------------
    def _rows(self, rows: list[int | None], skipped: Counter) -> Iterator[dict]:
        """Sequences of ``rows`` in order, reading each file once per run of its rows."""
        current: tuple[str, LandmarkFile | None] = ("", None)
        for r in rows:
            if r is None:
                yield self._empty()
                continue
            path = self.index.path[r]
            if path != current[0]:
                try:
                    current = (path, read_landmark_file(path, self.columns))
                except DataError as err:
                    log.warning("%s; its sequences become empty rows", err)
                    current = (path, None)
            sid = int(self.index.sequence_id[r])
            frames = None if current[1] is None else current[1].frames(sid)
            phrase = self.index.phrase[r]
            reason = self._reject(frames, phrase)
            if reason:
                skipped[reason] += 1
                log.debug("sequence %d of %s skipped: %s", sid, path, reason)
                yield self._empty(sid, skipped=True)
                continue
            yield {"frames": frames, "phrase": phrase, "sequence_id": sid}

    def _reject(self, frames: np.ndarray | None, phrase: str) -> str | None:
        if frames is None:
            return "absent from its parquet (or the parquet is unreadable)"
        if len(frames) == 0:
            return "0 frames"
        if not self.train:
            return None
        if self._hand_points:
            pts = frames.reshape(len(frames), self.landmarks.num_axes, -1)[:, 0, self._hand_points]
            if np.isnan(pts).all():
                return "no hand visible in any frame (training only)"
        if len(frames) < self.min_frames_per_char * len(phrase):
            return "fewer frames per character than min_frames_per_char (training only)"
        return None

    def _empty(self, sid: int = -1, skipped: bool = False) -> dict:
        """An empty row: padding, or (``skipped``) a sequence the skip policy set aside."""
        return {"frames": None, "phrase": "", "sequence_id": sid, "skipped": skipped}

    def _shuffled(self, items: Iterator[dict], rng: np.random.Generator) -> Iterator[dict]:
        if self.shuffle_buffer <= 1:
            yield from items
            return
        buf: list[dict] = []
        for item in items:
            if len(buf) < self.shuffle_buffer:
                buf.append(item)
                continue
            j = rng.integers(len(buf))
            yield buf[j]
            buf[j] = item
        rng.shuffle(buf)
        yield from buf

    # -- assembling -----------------------------------------------------------------------------
    def _key(self, item: dict) -> tuple[int, int, int]:
        """What seeds ``item``'s augmentations (each adds its own stream): (seed, epoch,
        sequence)."""
        return self.seed, self.epoch, item["sequence_id"] & 0x7FFFFFFF

    def _augmented(self, item: dict) -> dict:
        """The item with its frames augmented (training)."""
        if self.augmenter is None or item["frames"] is None:
            return item
        frames = item["frames"]
        pts = frames.reshape(len(frames), self.landmarks.num_axes, -1)  # (T, A, P): a view
        pts = self.augmenter(pts, self._key(item))
        return {**item, "frames": pts.reshape(len(pts), -1)}

    def _mixed(self, items: list[dict]) -> list[dict]:
        """A batch's items after the batch-level augmentations (training): sequence mixing,
        CutMix (:mod:`aslfs_pl.data.augment.mixing`)."""
        if self.augmenter is None:
            return items
        limits = BatchLimits(self.max_frames, self.max_target_len, self.min_frames_per_char)
        return self.augmenter.mix(items, self._key, limits)

    def _collate(self, items: list[dict]) -> dict[str, torch.Tensor]:
        """A batch of (augmented) items, mixed, padded to the bucket of its longest sequence."""
        return self.batcher.collate(self._mixed(items))

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        if info is not None and info.num_workers != self.num_workers:
            raise RuntimeError(
                f"stream built for {self.num_workers} workers but the DataLoader has "
                f"{info.num_workers}"
            )
        shard_id = self.rank * self.num_workers + worker
        rows = self.shard(shard_id)
        rng = np.random.default_rng([self.seed, self.epoch, shard_id, 0])
        skipped: Counter = Counter()
        items = self._rows(rows, skipped)
        if self.train:
            items = self._shuffled(items, rng)
        total = self.batches_per_shard()
        batches = self.batcher.grouped(self._augmented(item) for item in items)
        for emitted, batch in enumerate(batches, start=1):
            if len(batch) < self.batch_size:
                if self.train:  # training drops a partial last batch
                    break
                batch += [self._empty()] * (self.batch_size - len(batch))
            if emitted == total:
                # the loader stops asking after len() batches and never resumes this
                # generator: report before the last batch
                self._report(skipped, shard_id)
                yield self._collate(batch)
                return
            yield self._collate(batch)
        self._report(skipped, shard_id)

    def _report(self, skipped: Counter, shard_id: int) -> None:
        """The skip policy's count per reason for this shard: a warning in the run's first epoch
        (the same sequences are set aside in every epoch), debug after it; the count per epoch
        is a metric too (the task logs each batch's ``skipped`` rows as ``<stage>/skipped``)."""
        if not skipped:
            return
        first = self.first_epoch in (None, self.epoch)
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "%s shard %d: %d sequences used as empty rows (every epoch; counted as %s/skipped): %s",
            "train" if self.train else "eval",
            shard_id,
            sum(skipped.values()),
            "train" if self.train else "val",
            dict(skipped),
        )


class EpochLoader(DataLoader):
    """A DataLoader that tells its stream the epoch (and replica) each time it is iterated.

    Workers get a copy of the dataset when iteration starts, so setting it here reaches them.
    """

    def __init__(self, dataset: LandmarkStream, state: Callable[[], tuple[int, int, int]], **kw):
        super().__init__(dataset, batch_size=None, **kw)
        self._state = state

    def __iter__(self):
        epoch, rank, world = self._state()
        self.dataset.set_epoch(epoch)
        self.dataset.set_distributed(rank, world)
        return super().__iter__()
