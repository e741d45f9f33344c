"""LightningDataModule over Kaggle's files: the split, the landmark set, and one
:class:`~aslfs_pl.data.stream.LandmarkStream` per stage (how an epoch is streamed and sharded:
:mod:`aslfs_pl.data.stream`)."""

from __future__ import annotations

import logging
from dataclasses import asdict

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from aslfs_pl import vocab
from aslfs_pl.data.augment import AugmentConfig
from aslfs_pl.data.kaggle import DataError, SequenceIndex, check_parquet, load_index
from aslfs_pl.data.landmarks import LandmarkSet
from aslfs_pl.data.split import GROUPINGS, split_index
from aslfs_pl.data.stream import EpochLoader, LandmarkStream, bucket_lengths, landmark_dict

__all__ = ["KaggleDataModule", "LandmarkStream"]

log = logging.getLogger(__name__)


class KaggleDataModule(L.LightningDataModule):
    """Kaggle-format ASL fingerspelling data: splits, streaming, sharding, loaders.

    Args:
        data_dir: dataset root holding train.csv, train_landmarks/ (and the supplemental files).
        sources: index csvs to read: "train" and/or "supplemental".
        val_sources: the sources validation scores (default: all of ``sources``). With
            ``sources: [train, supplemental]`` and ``val_sources: [train]`` the held-out signers'
            supplemental sequences are left out of both sides, so validation scores the same
            sequences as a run on ``train`` alone.
        landmarks: the landmark subset read from disk and fed to the model.
        max_frames: the most frames a sequence keeps: a longer one is resampled to this many
            (evenly spaced frames); the model's positions cover this many.
        buckets: the frame counts batches are padded to (length bucketing): sequences of
            similar lengths are batched together and padded to the smallest of these that holds
            the longest, so the padding stays small and XLA compiles one graph per bucket. Sorted
            and distinct, each at most ``max_frames`` (which is always the last). Default: every
            32 frames up to ``max_frames``; ``[]``: one fixed length, ``max_frames``.
        max_target_len: decoder steps: phrase characters + end token (phrases of up to
            ``max_target_len - 1`` characters are kept; Kaggle's longest is 31).
        batch_size: sequences per batch and per replica.
        num_workers: DataLoader worker processes per replica.
        val_by: hold out whole "participant"s or whole "file"s for validation.
        val_fraction: share of participants (or files) held out.
        val_ids: explicit participant ids (or file ids) to hold out; overrides ``val_fraction``.
        augment: training augmentations.
        shuffle_buffer: sequences held per worker for shuffling across files.
        min_frames_per_char: training drops sequences with fewer frames per character (0: keep).
        seed: seed of the split, the order and the augmentations.
        test_split: the sequences ``fit.py test`` scores and ``fit.py predict`` writes: "val"
            (the held-out groups of the split above) or "all" (every sequence of ``sources``).
    """

    def __init__(
        self,
        data_dir: str = "data/synthetic",
        sources: tuple[str, ...] = ("train",),
        val_sources: tuple[str, ...] | None = None,
        landmarks: LandmarkSet | None = None,
        max_frames: int = 384,
        buckets: list[int] | None = None,
        max_target_len: int = 32,
        batch_size: int = 64,
        num_workers: int = 2,
        val_by: str = "participant",
        val_fraction: float = 0.1,
        val_ids: list[int] | None = None,
        augment: AugmentConfig | None = None,
        shuffle_buffer: int = 1000,
        min_frames_per_char: float = 0.0,
        seed: int = 42,
        test_split: str = "val",
    ):
        super().__init__()
        if val_by not in GROUPINGS:
            raise ValueError(f"data.val_by = {val_by!r}: choose 'participant' or 'file'")
        if test_split not in ("val", "all"):
            raise ValueError(f"data.test_split = {test_split!r}: choose 'val' or 'all'")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"data.val_fraction = {val_fraction}: must lie in [0, 1)")
        for name, value in (
            ("max_frames", max_frames),
            ("max_target_len", max_target_len),
            ("batch_size", batch_size),
        ):
            if value < 1:
                raise ValueError(f"data.{name} = {value}: must be >= 1")
        self.data_dir = data_dir
        self.sources = tuple(sources)
        self.val_sources = tuple(val_sources) if val_sources is not None else None
        if self.val_sources is not None and not set(self.val_sources) <= set(self.sources):
            raise ValueError(
                f"data.val_sources = {list(self.val_sources)}: must be among data.sources "
                f"{list(self.sources)}"
            )
        self.landmarks = landmarks or LandmarkSet()
        self.max_frames = max_frames
        self.buckets = bucket_lengths(max_frames, buckets)
        self.max_target_len = max_target_len
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_by = val_by
        self.val_fraction = val_fraction
        self.val_ids = val_ids
        self.augment = augment or AugmentConfig()
        self.shuffle_buffer = shuffle_buffer
        self.min_frames_per_char = min_frames_per_char
        self.seed = seed
        self.test_split = test_split
        self.test_set: LandmarkStream | None = None
        # Plain values only (no dataclass objects) so a checkpoint loads with weights_only.
        self.save_hyperparameters(ignore=["landmarks", "augment"])
        self.hparams["landmarks"] = landmark_dict(self.landmarks)
        self.hparams["augment"] = asdict(self.augment)
        self.train_set: LandmarkStream | None = None
        self.val_set: LandmarkStream | None = None

    # Values other components link to (LightningCLI link_arguments, export).
    @property
    def selected_columns(self) -> list[str]:
        return self.landmarks.selected_columns

    @property
    def num_axes(self) -> int:
        return self.landmarks.num_axes

    @property
    def num_columns(self) -> int:
        return self.landmarks.num_columns

    @property
    def vocab_size(self) -> int:
        return vocab.VOCAB_SIZE

    @classmethod
    def from_hparams(cls, hparams: dict) -> KaggleDataModule:
        """The data module a checkpoint recorded (``datamodule_hyper_parameters``)."""
        h = {k: v for k, v in hparams.items() if not k.startswith("_")}
        if isinstance(h.get("landmarks"), dict):
            h["landmarks"] = LandmarkSet(**{k: tuple(v) for k, v in h["landmarks"].items()})
        if isinstance(h.get("augment"), dict):
            h["augment"] = AugmentConfig(**h["augment"])
        return cls(**h)

    def index(self) -> SequenceIndex:
        """Every usable sequence of ``sources`` (phrases that fit ``max_target_len``)."""
        return load_index(self.data_dir, self.sources, max_phrase_len=self.max_target_len - 1)

    def _checked_index(self) -> SequenceIndex:
        """:meth:`index`, every parquet it lists checked for the selected columns."""
        index = self.index()
        for path in np.unique(index.path):
            check_parquet(path, self.selected_columns)
        return index

    def split(self, index: SequenceIndex) -> tuple[SequenceIndex, SequenceIndex]:
        """(train, validation) of ``index`` under this module's split settings."""
        train, val = split_index(index, self.val_by, self.val_fraction, self.val_ids, self.seed)
        if self.val_sources is not None:
            val = val.subset(np.isin(val.source, self.val_sources))
            if len(val) == 0:
                raise DataError(f"no held-out sequence from data.val_sources {self.val_sources}")
        return train, val

    def setup(self, stage: str | None = None) -> None:
        if stage in ("test", "predict"):
            self._setup_test()
            return
        if self.train_set is not None:
            return
        index = self._checked_index()
        train, val = self.split(index)
        log.info(
            "data: %d sequences (%d train, %d validation by %s) in %d files",
            len(index),
            len(train),
            len(val),
            self.val_by,
            len(np.unique(index.path)),
        )
        common = dict(
            landmarks=self.landmarks,
            batch_size=self.rows(),
            max_frames=self.max_frames,
            max_target_len=self.max_target_len,
            seed=self.seed,
            num_workers=self.num_workers,
            buckets=self.buckets,
        )
        self.train_set = LandmarkStream(
            train,
            train=True,
            augment=self.augment,
            shuffle_buffer=self.shuffle_buffer,
            min_frames_per_char=self.min_frames_per_char,
            **common,
        )
        self.val_set = LandmarkStream(val, train=False, **common) if len(val) else None
        _, rank, world = self._state()
        self.train_set.set_distributed(rank, world)  # the check below depends on the shard size
        if self.train_set.batches_per_shard() == 0:
            raise DataError(
                f"{len(train)} training sequences over {world} replica(s) x "
                f"{max(1, self.num_workers)} worker(s) do not fill one batch of {self.rows()}"
            )

    def _setup_test(self) -> None:
        if self.test_set is not None:
            return
        index = self._checked_index()
        if self.test_split == "val":
            index = self.split(index)[1]
        if len(index) == 0:
            raise DataError(
                f"data.test_split = 'val' holds no sequence (data.val_fraction "
                f"{self.val_fraction}): use --data.test_split all"
            )
        log.info("data: %d sequences to test / predict (%s)", len(index), self.test_split)
        self.test_set = LandmarkStream(
            index,
            self.landmarks,
            batch_size=self.rows(),
            max_frames=self.max_frames,
            max_target_len=self.max_target_len,
            train=False,
            seed=self.seed,
            num_workers=self.num_workers,
            buckets=self.buckets,
        )

    def rows(self) -> int:
        """Rows of a batch from this process's loader: ``batch_size`` per device, times the
        devices one process feeds (the SPMD strategy's ``data_parallel_size``; 1 otherwise)."""
        strategy = getattr(self.trainer, "strategy", None)
        return self.batch_size * getattr(strategy, "data_parallel_size", 1)

    def _state(self) -> tuple[int, int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 0, 1
        return trainer.current_epoch, trainer.global_rank, trainer.world_size

    def _loader(self, stream: LandmarkStream) -> DataLoader:
        epoch, rank, world = self._state()
        stream.set_distributed(rank, world)  # len() is asked before the first iteration
        return EpochLoader(
            stream,
            self._state,
            num_workers=self.num_workers,
            pin_memory=False,
            persistent_workers=False,  # workers must be re-forked to see the new epoch
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        return self._loader(self.train_set)

    def test_dataloader(self) -> DataLoader:
        assert self.test_set is not None, "call setup('test') first"
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        assert self.test_set is not None, "call setup('predict') first"
        return self._loader(self.test_set)

    def val_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        if self.val_set is None:
            return []
        return self._loader(self.val_set)
