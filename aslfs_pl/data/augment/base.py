"""What an augmentation is, its three kinds, and the registry of them.

An augmentation is one class, registered with :func:`register` in a module of this package. Its
settings are a dataclass of its own (``Settings``: flat fields such as ``flip_p``, a docstring
under each, range checks in ``check``); :class:`~aslfs_pl.data.augment.AugmentConfig` is built
from every registered ``Settings``, so ``--data.augment.<field>`` offers it and checkpoints
record it. Each instance reads its values from that whole config.

Each draws from a random stream of its own, keyed by (seed, epoch, sequence, its name): adding,
removing or switching off one never changes what the others draw, and a sequence's augmentation
never depends on which worker or replica reads it.

The kinds, each with its home:

* :class:`SequenceAugmentation`: one sequence's landmarks, in the loader's worker, numpy,
  ``(T, A, P)`` float32 (frames, axes, points) in raw image coordinates, NaN where unseen; they
  run in the order of their ``order``.
* :class:`BatchAugmentation`: the items of one training batch before they are padded (frames and
  phrases: mixing, CutMix), in the loader's worker.
* decoder-input augmentations (:mod:`aslfs_pl.model.token_noise`): the teacher-forced input
  characters, in the training step on the device (the task's ``token_noise`` settings).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

#: The registered augmentations, by name.
AUGMENTATIONS: dict[str, type[Augmentation]] = {}


def register(cls: type[Augmentation]) -> type[Augmentation]:
    """Class decorator: registers an augmentation under its ``name``."""
    if cls.name in AUGMENTATIONS:
        raise ValueError(f"two augmentations are called {cls.name!r}")
    AUGMENTATIONS[cls.name] = cls
    return cls


@dataclass
class Parts:
    """Where the landmark set's parts are among a frame's points."""

    mirror: list[int]
    """``LandmarkSet.mirror_permutation()``: each point's mirror partner."""
    hands: list[list[int]] = field(default_factory=list)
    """Each complete hand's 21 positions (MediaPipe order); a hand missing points is left out."""
    face: list[int] = field(default_factory=list)
    pose: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, mirror: list[int], parts: dict[str, list[int]]) -> Parts:
        """From ``LandmarkSet.mirror_permutation()`` and ``LandmarkSet.part_slices()``."""
        hands = [parts.get("left_hand", []), parts.get("right_hand", [])]
        return cls(
            list(mirror),
            [list(h) for h in hands if len(h) == 21],
            list(parts.get("face", [])),
            list(parts.get("pose", [])),
        )


class Augmentation:
    """One augmentation (see the module's doc)."""

    name: ClassVar[str]
    Settings: ClassVar[type]
    probability: ClassVar[str]
    """The name of its settings field that says how often it applies (0: off)."""
    order: ClassVar[int]
    """Where it runs among the augmentations of its kind (ascending)."""

    def __init__(self, config: Any, parts: Parts):
        self.config, self.parts = config, parts
        self.stream = zlib.crc32(self.name.encode())

    @property
    def p(self) -> float:
        return getattr(self.config, self.probability)

    def rng(self, key: Sequence[int]) -> np.random.Generator:
        """Its own draws for ``key`` (seed, epoch, sequence)."""
        return np.random.default_rng([*key, self.stream])


class SequenceAugmentation(Augmentation):
    """Changes one sequence: ``(T, A, P)`` -> ``(T', A, P)``, never its input. It applies with
    probability ``p`` (its stream's first draw) where it can (:meth:`can_apply`)."""

    def __call__(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.can_apply(pts) or rng.random() >= self.p:
            return pts
        return self.apply(pts, rng)

    def can_apply(self, pts: np.ndarray) -> bool:
        return True

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


@dataclass
class BatchLimits:
    """What a mixed batch row must still fit."""

    max_frames: int
    max_target_len: int
    min_frames_per_char: float


class BatchAugmentation(Augmentation):
    """Changes the items of one training batch (dicts with ``frames`` (T, C) or None for a skipped
    row, ``phrase`` and ``sequence_id``); a row's draws come from ``rng_for(item)``."""

    def __call__(
        self,
        items: list[dict],
        rng_for: Callable[[dict], np.random.Generator],
        limits: BatchLimits,
    ) -> list[dict]:
        raise NotImplementedError


def of_kind(kind: type[Augmentation]) -> list[type[Augmentation]]:
    """The registered augmentations of ``kind``, in their order."""
    found = [cls for cls in AUGMENTATIONS.values() if issubclass(cls, kind)]
    return sorted(found, key=lambda cls: cls.order)
