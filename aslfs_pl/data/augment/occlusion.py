"""What goes unseen: fingers, a region of the image, a hand, the face, the pose (NaN, as when
MediaPipe misses them)."""

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
    """Fingers hidden (NaN) for windows of frames."""
    finger_drop_max: int = 2
    """Most fingers hidden at once: 1 to this many distinct fingers of one hand; with
    ``finger_drop_both_hands``, this many draws from both hands' ten, with replacement (the 1st
    place's, as coded: 12)."""
    finger_drop_both_hands: bool = False
    """Draw the fingers from both hands (see ``finger_drop_max``)."""
    finger_drop_windows: int = 1
    """Windows of frames, each with its own fingers (the 1st place's: 2)."""
    finger_drop_window: tuple[float, float] | None = None
    """Range of a window's length, as a fraction of the frames (the 1st place's: 0.25-0.5);
    None: a random start and a random length."""

    def check(self) -> None:
        if self.finger_drop_max < 1 or self.finger_drop_windows < 1:
            raise ValueError("augment.finger_drop_max and finger_drop_windows must be >= 1")
        if self.finger_drop_window is not None:
            lo, hi = self.finger_drop_window
            if not 0.0 < lo <= hi <= 1.0:
                raise ValueError(f"augment.finger_drop_window = {(lo, hi)}: in (0, 1]")


@register
class FingerDrop(SequenceAugmentation):
    name, Settings, probability, order = "finger_drop", FingerDropSettings, "finger_drop_p", 80

    def can_apply(self, pts: np.ndarray) -> bool:
        return bool(self.parts.hands)

    def _points(self, rng: np.random.Generator) -> list[int]:
        c, hands = self.config, self.parts.hands
        if c.finger_drop_both_hands:
            fingers = [[h[i] for i in f] for h in hands for f in HAND_FINGERS]
            picked = rng.integers(len(fingers), size=c.finger_drop_max)
            return [p for k in picked for p in fingers[k]]
        hand = hands[rng.integers(len(hands))]
        n = rng.integers(1, min(c.finger_drop_max, len(HAND_FINGERS)) + 1)
        picked = rng.choice(len(HAND_FINGERS), size=n, replace=False)
        return [hand[i] for f in picked for i in HAND_FINGERS[f]]

    def _window(self, t: int, rng: np.random.Generator) -> np.ndarray:
        window = np.zeros(t, bool)
        if self.config.finger_drop_window is None:
            start = rng.integers(t)
            window[start : start + rng.integers(1, t + 1)] = True
        else:
            size = int(t * rng.uniform(*self.config.finger_drop_window))
            start = int(rng.random() * min(max(t - size, 1), t))
            window[start : start + size] = True
        return window

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for _ in range(self.config.finger_drop_windows):
            pts = hide(pts, self._points(rng), self._window(pts.shape[0], rng))
        return pts


@dataclass
class SpatialMaskSettings:
    spatial_mask_p: float = 0.0
    """Every point inside one square of the image unseen (NaN) in every frame, as when
    something covers part of the view (the 2nd place's spatial cutout, p 0.5). 0: off (the
    seed)."""
    spatial_mask_size: tuple[float, float] = (0.2, 0.4)
    """Range of the square's side, in image units (the frame is 0..1 wide and high); its corner
    is drawn uniformly in 0..1 on each axis."""

    def check(self) -> None:
        lo, hi = self.spatial_mask_size
        if not 0.0 < lo <= hi:
            raise ValueError(f"augment.spatial_mask_size = {(lo, hi)}: need 0 < low <= high")


@register
class SpatialMask(SequenceAugmentation):
    """Reads the first two axes as x and y (the landmark set's axes are an ordered subset of
    x, y, z), so it applies only where both are read."""

    name, Settings, probability, order = "spatial_mask", SpatialMaskSettings, "spatial_mask_p", 85

    def can_apply(self, pts: np.ndarray) -> bool:
        return pts.shape[1] >= 2

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        corner = rng.random(2)  # x, y
        size = rng.uniform(*self.config.spatial_mask_size)
        xy = pts[:, :2]  # (T, 2, P); NaN compares False: unseen points stay as they are
        inside = ((xy > corner[:, None]) & (xy < corner[:, None] + size)).all(1)  # (T, P)
        out = pts.copy()
        out.transpose(0, 2, 1)[inside] = np.nan
        return out


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
