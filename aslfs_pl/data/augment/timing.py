"""When the frames are: signing speed, dropped frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aslfs_pl.data.augment.base import SequenceAugmentation, register
from aslfs_pl.data.augment.geometry import check_range


def resample_time(pts: np.ndarray, factor: float) -> np.ndarray:
    """Play the sequence ``factor`` times faster (nearest frame; NaN-safe)."""
    t = pts.shape[0]
    new_t = max(1, int(round(t / factor)))
    idx = np.minimum((np.arange(new_t) * t / new_t).astype(np.int64), t - 1)
    return pts[idx]


def drop_frames(pts: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Keep the frames where ``keep`` (T,) is True, and at least the first one."""
    if not keep.any():
        keep = keep.copy()
        keep[0] = True
    return pts[keep]


@dataclass
class SpeedSettings:
    speed_p: float = 0.5
    """Time resampling (signing speed change)."""
    speed_range: tuple[float, float] = (0.7, 1.3)
    """Range of the speed factor (new length = old length / factor)."""

    def check(self) -> None:
        check_range("speed_range", self.speed_range)


@register
class Speed(SequenceAugmentation):
    name, Settings, probability, order = "speed", SpeedSettings, "speed_p", 60

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return resample_time(pts, rng.uniform(*self.config.speed_range))


@dataclass
class FrameDropSettings:
    frame_drop_p: float = 0.3
    """Random frame dropping."""
    frame_drop_rate: float = 0.1
    """Fraction of frames dropped when it applies (at least one frame is always kept)."""

    def check(self) -> None:
        if not 0.0 <= self.frame_drop_rate < 1.0:
            raise ValueError(f"augment.frame_drop_rate = {self.frame_drop_rate}: in [0, 1)")


@register
class FrameDrop(SequenceAugmentation):
    name, Settings, probability, order = "frame_drop", FrameDropSettings, "frame_drop_p", 70

    def can_apply(self, pts: np.ndarray) -> bool:
        return pts.shape[0] > 1

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return drop_frames(pts, rng.random(pts.shape[0]) >= self.config.frame_drop_rate)
