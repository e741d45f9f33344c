"""What goes unseen: fingers, a hand, the face, the pose (NaN, as when MediaPipe misses them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aslfs_pl.data.augment.base import SequenceAugmentation, register
from aslfs_pl.data.augment.geometry import HAND_FINGERS


def hide(pts: np.ndarray, points: list[int], frames: np.ndarray) -> np.ndarray:
    """Set ``points`` to NaN in the frames where ``frames`` (T,) is True."""
    out = pts.copy()
    out[np.ix_(np.flatnonzero(frames), np.arange(pts.shape[1]), points)] = np.nan
    return out


@dataclass
class FingerDropSettings:
    finger_drop_p: float = 0.2
    """Fingers hidden (NaN) for a random window of frames."""
    finger_drop_max: int = 2
    """Most fingers hidden at once."""


@register
class FingerDrop(SequenceAugmentation):
    name, Settings, probability, order = "finger_drop", FingerDropSettings, "finger_drop_p", 80

    def can_apply(self, pts: np.ndarray) -> bool:
        return bool(self.parts.hands)

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        hands, t = self.parts.hands, pts.shape[0]
        hand = hands[rng.integers(len(hands))]
        n = rng.integers(1, self.config.finger_drop_max + 1)
        fingers = rng.choice(len(HAND_FINGERS), size=n, replace=False)
        start = rng.integers(t)
        window = np.zeros(t, bool)
        window[start : start + rng.integers(1, t + 1)] = True
        return hide(pts, [hand[i] for f in fingers for i in HAND_FINGERS[f]], window)


@dataclass
class HandDropSettings:
    hand_drop_p: float = 0.2
    """A hand hidden (NaN) for random frames, as when MediaPipe loses it."""
    hand_drop_rate: float = 0.2
    """Fraction of frames in which the hand is hidden when it applies."""

    def check(self) -> None:
        if not 0.0 <= self.hand_drop_rate <= 1.0:
            raise ValueError(f"augment.hand_drop_rate = {self.hand_drop_rate}: in [0, 1]")


@register
class HandDrop(SequenceAugmentation):
    name, Settings, probability, order = "hand_drop", HandDropSettings, "hand_drop_p", 90

    def can_apply(self, pts: np.ndarray) -> bool:
        return bool(self.parts.hands)

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        hands = self.parts.hands
        hand = hands[rng.integers(len(hands))]
        return hide(pts, hand, rng.random(pts.shape[0]) < self.config.hand_drop_rate)


class WholePartDrop(SequenceAugmentation):
    """A part's points hidden in every frame (the part: ``part``, an attribute of Parts)."""

    part: str

    def can_apply(self, pts: np.ndarray) -> bool:
        return bool(getattr(self.parts, self.part))

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return hide(pts, getattr(self.parts, self.part), np.ones(pts.shape[0], bool))


@dataclass
class FaceDropSettings:
    face_drop_p: float = 0.0
    """The face's points hidden (NaN) in every frame, as when MediaPipe misses the face or the
    signer turns away (the 1st place's face dropout). 0: off (the seed)."""


@register
class FaceDrop(WholePartDrop):
    name, Settings, probability, order = "face_drop", FaceDropSettings, "face_drop_p", 100
    part = "face"


@dataclass
class PoseDropSettings:
    pose_drop_p: float = 0.0
    """The pose's points hidden (NaN) in every frame (the 1st place's pose dropout). 0: off."""


@register
class PoseDrop(WholePartDrop):
    name, Settings, probability, order = "pose_drop", PoseDropSettings, "pose_drop_p", 110
    part = "pose"
