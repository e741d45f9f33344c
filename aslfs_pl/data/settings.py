"""The data module's settings: one typed dataclass, a docstring under each field.

:class:`aslfs_pl.data.datamodule.KaggleDataModule` takes them as ``**settings`` and passes them
here unchanged (as the task does with the network's), so a setting is written once: the training
CLI offers it as ``--data.<field>`` (its docstring is the ``--help`` text), checkpoints record it,
and the data module reads it (``datamodule.<field>``). The landmark set and the augmentations are
objects of their own (``--data.landmarks.*``, ``--data.augment.*``).
"""

from __future__ import annotations

from dataclasses import dataclass

from aslfs_pl.data.split import GROUPINGS


@dataclass
class DataSettings:
    """Where the data is, how it is split, batched and streamed."""

    data_dir: str = "data/synthetic"
    """Dataset root holding train.csv, train_landmarks/ (and the supplemental files)."""
    sources: tuple[str, ...] = ("train",)
    """Index csvs to read: "train" and/or "supplemental"."""
    val_sources: tuple[str, ...] | None = None
    """The sources validation scores (default: all of ``sources``). With ``sources: [train,
    supplemental]`` and ``val_sources: [train]`` the held-out signers' supplemental sequences are
    left out of both sides, so validation scores the same sequences as a run on ``train`` alone."""
    max_frames: int = 384
    """The most frames a sequence keeps: a longer one is resampled to this many (evenly spaced
    frames); the model's positions cover this many."""
    buckets: list[int] | None = None
    """The frame counts batches are padded to (length bucketing): sequences of similar lengths are
    batched together and padded to the smallest of these that holds the longest, so the padding
    stays small and XLA compiles one graph per bucket. Sorted and distinct, each at most
    ``max_frames`` (which is always the last). Default: every 32 frames up to ``max_frames``;
    ``[]``: one fixed length, ``max_frames``."""
    max_target_len: int = 32
    """Decoder steps: phrase characters + end token (phrases of up to ``max_target_len - 1``
    characters are kept; Kaggle's longest is 31)."""
    batch_size: int = 64
    """Sequences per batch and per replica."""
    num_workers: int = 2
    """DataLoader worker processes per replica."""
    val_by: str = "participant"
    """Hold out whole "participant"s or whole "file"s for validation."""
    val_fraction: float = 0.1
    """Share of participants (or files) held out."""
    val_ids: list[int] | None = None
    """Explicit participant ids (or file ids) to hold out; overrides ``val_fraction``."""
    shuffle_buffer: int = 1000
    """Sequences held per worker for shuffling across files."""
    min_frames_per_char: float = 0.0
    """Training drops sequences with fewer frames per character (0: keep)."""
    seed: int = 42
    """Seed of the split, the order and the augmentations."""
    test_split: str = "val"
    """The sequences ``fit.py test`` scores and ``fit.py predict`` writes: "val" (the held-out
    groups of the split above) or "all" (every sequence of ``sources``)."""

    def __post_init__(self) -> None:
        self.sources = tuple(self.sources)
        if self.val_sources is not None:
            self.val_sources = tuple(self.val_sources)
            if not set(self.val_sources) <= set(self.sources):
                raise ValueError(
                    f"data.val_sources = {list(self.val_sources)}: must be among data.sources "
                    f"{list(self.sources)}"
                )
        if self.val_by not in GROUPINGS:
            raise ValueError(f"data.val_by = {self.val_by!r}: choose 'participant' or 'file'")
        if self.test_split not in ("val", "all"):
            raise ValueError(f"data.test_split = {self.test_split!r}: choose 'val' or 'all'")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"data.val_fraction = {self.val_fraction}: must lie in [0, 1)")
        for name in ("max_frames", "max_target_len", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} = {getattr(self, name)}: must be >= 1")
