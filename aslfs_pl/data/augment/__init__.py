"""Training-only augmentations: one class each, registered in the modules of this package
(:mod:`~aslfs_pl.data.augment.base` says what one is and names the three kinds' homes).

Importing the package imports every module in it; :class:`AugmentConfig` is then made of every
registered augmentation's settings, so a new augmentation is one new file here (its class and
its settings) plus its test, and ``--data.augment.<its field>`` offers it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from aslfs_pl.data.augment.base import (
    AUGMENTATIONS,
    Augmentation,
    BatchAugmentation,
    BatchLimits,
    Parts,
    SequenceAugmentation,
    of_kind,
    register,
)
from aslfs_pl.model.registry import import_modules

import_modules(__name__, __path__)


def compose_config(classes: Sequence[type[Augmentation]]) -> type:
    """A dataclass with the settings of every augmentation of ``classes`` (their ``Settings``),
    checked as each of them asks and every ``*_p`` a probability."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if name.endswith("_p") and not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} = {value}: a probability must lie in [0, 1]")
        for cls in classes:
            check = getattr(cls.Settings, "check", None)
            if check is not None:
                check(self)

    bases = tuple(reversed([cls.Settings for cls in classes]))  # fields in registry order
    doc = "Probability and strength of each augmentation (training only; 0 disables one)."
    namespace = {"__doc__": doc, "__post_init__": __post_init__, "__module__": __name__}
    return dataclass(type("AugmentConfig", bases, namespace))


AugmentConfig = compose_config(of_kind(SequenceAugmentation) + of_kind(BatchAugmentation))


class Augmenter:
    """The switched-on augmentations of a landmark set, each drawing from its own stream.

    Args:
        config: their settings.
        mirror: ``LandmarkSet.mirror_permutation()``.
        parts: ``LandmarkSet.part_slices()``: the positions of each part's points. A hand is
            augmented when all its 21 points (MediaPipe order) are selected.
    """

    def __init__(self, config, mirror: list[int], parts: dict[str, list[int]]):
        self.config = config
        where = Parts.of(mirror, parts)
        on = [cls for cls in AUGMENTATIONS.values() if getattr(config, cls.probability, 0) > 0]
        self.sequence = [cls(config, where) for cls in of_kind(SequenceAugmentation) if cls in on]
        self.batch = [cls(config, where) for cls in of_kind(BatchAugmentation) if cls in on]

    def __call__(self, pts: np.ndarray, key: Sequence[int]) -> np.ndarray:
        """One sequence's ``(T, A, P)`` points augmented (a new array; the input is never
        changed); ``key`` (seed, epoch, sequence) seeds every augmentation's own stream."""
        for aug in self.sequence if pts.shape[0] else ():
            pts = aug(pts, aug.rng(key))
        return pts

    def mix(
        self, items: list[dict], key_of: Callable[[dict], Sequence[int]], limits: BatchLimits
    ) -> list[dict]:
        """A training batch's items after the batch-level augmentations; ``key_of(item)`` keys
        each row's draws."""
        for aug in self.batch:
            items = aug(items, lambda item, aug=aug: aug.rng(key_of(item)), limits)
        return items


__all__ = [
    "AUGMENTATIONS",
    "AugmentConfig",
    "Augmenter",
    "BatchAugmentation",
    "BatchLimits",
    "Parts",
    "SequenceAugmentation",
    "compose_config",
    "register",
]
