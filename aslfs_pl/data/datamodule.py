"""LightningDataModule over Kaggle's files: the split, the landmark set, and one
:class:`~aslfs_pl.data.stream.LandmarkStream` per stage (how an epoch is streamed and sharded:
:mod:`aslfs_pl.data.stream`)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from aslfs_pl import vocab
from aslfs_pl.data.augment import AugmentConfig
from aslfs_pl.data.batching import bucket_lengths
from aslfs_pl.data.kaggle import DataError, SequenceIndex, check_parquet, load_index
from aslfs_pl.data.landmarks import LandmarkSet
from aslfs_pl.data.settings import DataSettings
from aslfs_pl.data.split import split_index
from aslfs_pl.data.stream import EpochLoader, LandmarkStream, landmark_dict

__all__ = ["KaggleDataModule", "LandmarkStream"]

log = logging.getLogger(__name__)


class KaggleDataModule(L.LightningDataModule):
    """Kaggle-format ASL fingerspelling data: splits, streaming, sharding, loaders.

    Its settings are :class:`~aslfs_pl.data.settings.DataSettings`: they arrive here as
    ``**settings`` (``--data.batch_size 32``) and go to it unchanged, so a new data setting is
    one field there; each reads as an attribute of the module too (``datamodule.batch_size``).

    Args:
        landmarks: the landmark subset read from disk and fed to the model.
        augment: training augmentations.
    """

    def __init__(
        self,
        landmarks: LandmarkSet | None = None,
        augment: AugmentConfig | None = None,
        **settings: Any,
    ):
        super().__init__()
        self.settings = DataSettings(**settings)
        self.landmarks = landmarks or LandmarkSet()
        self.augment = augment or AugmentConfig()
        self.buckets = bucket_lengths(self.settings.max_frames, self.settings.buckets)
        self.test_set: LandmarkStream | None = None
        self.train_set: LandmarkStream | None = None
        self.val_set: LandmarkStream | None = None
        # Plain values only (no dataclass objects) so a checkpoint loads with weights_only.
        self.save_hyperparameters(ignore=["landmarks", "augment"])
        self.hparams["landmarks"] = landmark_dict(self.landmarks)
        self.hparams["augment"] = asdict(self.augment)

    def __getattr__(self, name: str) -> Any:
        """A setting read as the module's attribute (``datamodule.max_frames``)."""
        settings = self.__dict__.get("settings")
        if settings is not None and name in settings.__dataclass_fields__:
            return getattr(settings, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

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
    def hand_columns(self) -> dict[str, list[int]]:
        return self.landmarks.hand_columns()

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
        """The streams ``stage`` reads, and only those: ``fit`` the training and validation
        splits, ``validate`` the validation split, ``test`` / ``predict`` the test sequences."""
        if stage in ("test", "predict"):
            self._setup_test()
            return
        if self.train_set is not None or (stage == "validate" and self.val_set is not None):
            return
        index = self._checked_index()
        train, val = self.split(index)
        if stage == "validate":
            empty = f"data.val_fraction {self.val_fraction}, data.val_ids {self.val_ids}"
            self.val_set = self._evaluated(val, f"validate (by {self.val_by})", empty)
            return
        log.info(
            "data: %d sequences (%d train, %d validation by %s) in %d files",
            len(index),
            len(train),
            len(val),
            self.val_by,
            len(np.unique(index.path)),
        )
        common = self._stream_settings()
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
        empty = f"data.val_fraction {self.val_fraction}: use --data.test_split all"
        self.test_set = self._evaluated(index, f"test / predict ({self.test_split})", empty)

    def _evaluated(self, index: SequenceIndex, what: str, empty: str) -> LandmarkStream:
        """The evaluation stream of ``index`` for ``what``; ``empty``: what the error says
        when it holds no sequence."""
        if len(index) == 0:
            raise DataError(f"no sequence to {what} ({empty})")
        log.info("data: %d sequences to %s", len(index), what)
        return LandmarkStream(index, train=False, **self._stream_settings())

    def _stream_settings(self) -> dict:
        """What every stage's stream is built with."""
        return dict(
            landmarks=self.landmarks,
            batch_size=self.rows(),
            max_frames=self.max_frames,
            max_target_len=self.max_target_len,
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
        if self.val_set is None:
            return []
        return self._loader(self.val_set)
