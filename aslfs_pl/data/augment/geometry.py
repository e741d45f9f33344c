"""Where the points are: mirror, rotation, stretch, shift, one joint affine map, per-finger affine.

The model normalises every frame by its own centre and spread
(:func:`aslfs_pl.model.features.normalise_frames`), so a rigid global shift or uniform scale alone
would be invisible to it; the shift therefore also moves each hand relative to the body, and the
stretch scales x and y independently. Rotation, stretch and shift act about the sequence centre
(the same point before and after each of them: an affine map keeps a mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aslfs_pl.data.augment.base import SequenceAugmentation, register

HAND_FINGERS: tuple[tuple[int, ...], ...] = (
    (1, 2, 3, 4),
    (5, 6, 7, 8),
    (9, 10, 11, 12),
    (13, 14, 15, 16),
    (17, 18, 19, 20),
)  # MediaPipe hand points of thumb, index, middle, ring, little finger


def centre(pts: np.ndarray) -> np.ndarray:
    """(2,) mean x, y over the visible points of up to 16 evenly spaced frames (0.5, 0.5 if none)."""
    xy = pts[:: max(1, len(pts) // 16), :2]  # (t, 2, P)
    seen = ~np.isnan(xy[:, 0])
    if not seen.any():
        return np.full(2, 0.5, np.float32)
    return np.array([xy[:, 0][seen].mean(), xy[:, 1][seen].mean()], np.float32)


def affine(
    pts: np.ndarray, matrix: np.ndarray, about: np.ndarray, offset: np.ndarray
) -> np.ndarray:
    """x, y -> matrix @ (x, y - about) + about + offset (z untouched); a copy."""
    out = pts.copy()
    x, y = pts[:, 0] - about[0], pts[:, 1] - about[1]  # (T, P)
    out[:, 0] = matrix[0, 0] * x + matrix[0, 1] * y + (about[0] + offset[0])
    out[:, 1] = matrix[1, 0] * x + matrix[1, 1] * y + (about[1] + offset[1])
    return out


def flip(pts: np.ndarray, mirror: list[int]) -> np.ndarray:
    """Mirror x (x -> 1 - x) and move every point to its mirror partner's slot."""
    out = pts[:, :, mirror]
    out[:, 0] = 1.0 - out[:, 0]
    return out


def rotation(degrees: float) -> np.ndarray:
    """2x2 rotation matrix."""
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)


def rotate(pts: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate x, y by ``degrees`` about the sequence centre."""
    return affine(pts, rotation(degrees), centre(pts), np.zeros(2, np.float32))


def scale(pts: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Stretch x by ``sx`` and y by ``sy`` about the sequence centre."""
    return affine(pts, np.diag([sx, sy]).astype(np.float32), centre(pts), np.zeros(2, np.float32))


def shift(pts: np.ndarray, offset: np.ndarray, hand_offsets: dict[tuple[int, ...], np.ndarray]):
    """Add ``offset`` (2,) to every point and ``hand_offsets[points]`` (2,) to those points."""
    out = pts.copy()
    out[:, 0] += offset[0]
    out[:, 1] += offset[1]
    for idx, off in hand_offsets.items():
        out[:, 0, list(idx)] += off[0]
        out[:, 1, list(idx)] += off[1]
    return out


def finger_affine(
    pts: np.ndarray, hand: list[int], degrees: np.ndarray, scales: np.ndarray
) -> np.ndarray:
    """Rotate and scale (x, y) of each finger about its base joint, in every frame.

    Args:
        pts: (T, A, P) points.
        hand: positions of one hand's 21 points in ``pts`` (MediaPipe order).
        degrees: (5,) rotation of thumb, index, middle, ring, little finger.
        scales: (5,) scale of each finger.
    """
    out = pts.copy()
    for finger, deg, s in zip(HAND_FINGERS, degrees, scales, strict=True):
        base, rest = hand[finger[0]], [hand[i] for i in finger[1:]]
        origin = out[:, :2, base : base + 1]  # (T, 2, 1)
        m = rotation(float(deg)) * np.float32(s)
        out[:, :2, rest] = np.einsum("ij,tjk->tik", m, out[:, :2, rest] - origin) + origin
    return out


def check_range(name: str, value: tuple[float, float]) -> None:
    lo, hi = value
    if not 0 < lo <= hi:
        raise ValueError(f"augment.{name} = {(lo, hi)}: need 0 < low <= high")


@dataclass
class FlipSettings:
    flip_p: float = 0.5
    """Left/right mirror: x -> 1 - x, hands and paired lip/pose points swapped."""


@register
class Flip(SequenceAugmentation):
    name, Settings, probability, order = "flip", FlipSettings, "flip_p", 10

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return flip(pts, self.parts.mirror)


@dataclass
class RotateSettings:
    rotate_p: float = 0.5
    """Rotation of the x-y plane about the sequence centre."""
    rotate_max_deg: float = 15.0
    """Largest rotation angle, degrees."""


@register
class Rotate(SequenceAugmentation):
    name, Settings, probability, order = "rotate", RotateSettings, "rotate_p", 20

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        limit = self.config.rotate_max_deg
        return rotate(pts, rng.uniform(-limit, limit))


@dataclass
class ScaleSettings:
    scale_p: float = 0.5
    """Independent stretch of x and y about the sequence centre."""
    scale_range: tuple[float, float] = (0.8, 1.2)
    """Range of each axis' scale factor."""

    def check(self) -> None:
        check_range("scale_range", self.scale_range)


@register
class Scale(SequenceAugmentation):
    name, Settings, probability, order = "scale", ScaleSettings, "scale_p", 30

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return scale(pts, *rng.uniform(*self.config.scale_range, size=2))


@dataclass
class ShiftSettings:
    shift_p: float = 0.5
    """Shift of the whole body plus an independent offset of each hand relative to it."""
    shift_max: float = 0.1
    """Largest global shift, image units."""
    hand_shift_max: float = 0.05
    """Largest per-hand offset, image units."""


@register
class Shift(SequenceAugmentation):
    name, Settings, probability, order = "shift", ShiftSettings, "shift_p", 40

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        offset = rng.uniform(-c.shift_max, c.shift_max, size=2).astype(np.float32)
        hands = {
            tuple(h): rng.uniform(-c.hand_shift_max, c.hand_shift_max, 2).astype(np.float32)
            for h in self.parts.hands
        }
        return shift(pts, offset, hands)


@dataclass
class AffineSettings:
    affine_p: float = 0.0
    """One affine map of x, y about the sequence centre with every part drawn at once (the 1st
    and 2nd places' spatial affine): a uniform scale, a shear of x or of y (one of them, an even
    chance), a rotation and a shift of both axes by one value. 0: off (the seed)."""
    affine_scale: tuple[float, float] = (0.7, 1.3)
    """Range of the uniform scale."""
    affine_shear: float = 0.2
    """Largest shear factor."""
    affine_degrees: float = 30.0
    """Largest rotation, degrees."""
    affine_shift: float = 0.15
    """Largest shift, image units (the model's per-frame normalisation removes a global shift:
    it matters only through the other augmentations and the stem's absolute features)."""

    def check(self) -> None:
        check_range("affine_scale", self.affine_scale)


@register
class Affine(SequenceAugmentation):
    name, Settings, probability, order = "affine", AffineSettings, "affine_p", 45

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        shear = np.eye(2, dtype=np.float32)
        factor = rng.uniform(-c.affine_shear, c.affine_shear)
        if rng.random() < 0.5:
            shear[0, 1] = factor  # x += factor * y
        else:
            shear[1, 0] = factor  # y += factor * x
        matrix = rotation(rng.uniform(-c.affine_degrees, c.affine_degrees)) @ shear
        matrix = matrix * np.float32(rng.uniform(*c.affine_scale))
        offset = np.full(2, rng.uniform(-c.affine_shift, c.affine_shift), np.float32)
        return affine(pts, matrix.astype(np.float32), centre(pts), offset)


@dataclass
class FingerAffineSettings:
    finger_affine_p: float = 0.0
    """Per-finger affine: each finger of each hand rotated and scaled about its base joint
    (a signer's own finger proportions and letter forms). 0: off (the seed)."""
    finger_affine_deg: float = 10.0
    """Largest per-finger rotation, degrees."""
    finger_affine_scale: tuple[float, float] = (0.9, 1.1)
    """Range of a finger's scale factor."""

    def check(self) -> None:
        check_range("finger_affine_scale", self.finger_affine_scale)


@register
class FingerAffine(SequenceAugmentation):
    name, Settings, probability, order = (
        "finger_affine",
        FingerAffineSettings,
        "finger_affine_p",
        50,
    )

    def can_apply(self, pts: np.ndarray) -> bool:
        return bool(self.parts.hands)

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        for hand in self.parts.hands:
            deg = rng.uniform(-c.finger_affine_deg, c.finger_affine_deg, len(HAND_FINGERS))
            pts = finger_affine(pts, hand, deg, rng.uniform(*c.finger_affine_scale, 5))
        return pts
