"""When the frames are: signing speed (whole, or window by window), a shifted start, dropped
and masked frames."""

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


@dataclass
class WindowSpeedSettings:
    window_speed_p: float = 0.0
    """Speed changing along the sequence (the 1st place's dynamic resample): the frames cut into
    windows of equal length, each resampled by its own factor. 0: off (the seed)."""
    window_speed_range: tuple[float, float] = (0.9, 1.1)
    """Range of each window's speed factor."""
    window_speed_windows: tuple[int, int] = (20, 29)
    """Smallest and largest number of windows (at most one per frame)."""

    def check(self) -> None:
        check_range("window_speed_range", self.window_speed_range)
        lo, hi = self.window_speed_windows
        if not 1 <= lo <= hi:
            raise ValueError(f"augment.window_speed_windows = {(lo, hi)}: need 1 <= low <= high")


@register
class WindowSpeed(SequenceAugmentation):
    name, Settings, probability, order = (
        "window_speed",
        WindowSpeedSettings,
        "window_speed_p",
        62,
    )

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        windows = min(
            int(rng.integers(c.window_speed_windows[0], c.window_speed_windows[1] + 1)), len(pts)
        )
        factors = rng.uniform(*c.window_speed_range, size=windows)
        parts = np.array_split(pts, windows)
        return np.concatenate([resample_time(p, f) for p, f in zip(parts, factors, strict=True)])


@dataclass
class TimeShiftSettings:
    time_shift_p: float = 0.0
    """A shifted start (the 1st place's): up to ``time_shift_max`` unseen frames put before
    the first, or as many first frames cut (never down to fewer than 2). 0: off (the seed)."""
    time_shift_max: int = 10
    """Largest shift, frames."""


@register
class TimeShift(SequenceAugmentation):
    name, Settings, probability, order = "time_shift", TimeShiftSettings, "time_shift_p", 65

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        shift = int(rng.integers(-self.config.time_shift_max, self.config.time_shift_max + 1))
        if shift > 0:
            unseen = np.full((shift, *pts.shape[1:]), np.nan, pts.dtype)
            return np.concatenate([unseen, pts])
        if shift < 0 and len(pts) + shift >= 2:
            return pts[-shift:]
        return pts


@dataclass
class TemporalMaskSettings:
    temporal_mask_p: float = 0.0
    """Runs of frames made unseen (the 1st place's temporal masks): one of
    ``temporal_mask_counts`` masks, evenly chosen, together covering a fraction
    ``temporal_mask_size`` of the frames (each mask that fraction over the count). 0: off (the
    seed)."""
    temporal_mask_size: tuple[float, float] = (0.2, 0.4)
    """Range of the fraction of frames the masks cover together."""
    temporal_mask_counts: tuple[int, ...] = (1, 2, 4)
    """How many masks, one value chosen evenly."""

    def check(self) -> None:
        lo, hi = self.temporal_mask_size
        if not 0.0 <= lo <= hi < 1.0:
            raise ValueError(f"augment.temporal_mask_size = {(lo, hi)}: need 0 <= low <= high < 1")
        if not self.temporal_mask_counts or min(self.temporal_mask_counts) < 1:
            raise ValueError(
                f"augment.temporal_mask_counts = {self.temporal_mask_counts}: counts >= 1"
            )


@register
class TemporalMask(SequenceAugmentation):
    name, Settings, probability, order = (
        "temporal_mask",
        TemporalMaskSettings,
        "temporal_mask_p",
        75,
    )

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c, t = self.config, len(pts)
        count = int(rng.choice(c.temporal_mask_counts))
        out = pts.copy()
        for _ in range(count):
            size = int(t * rng.uniform(*c.temporal_mask_size) / count)
            start = int(rng.random() * min(max(t - size, 1), t))
            out[start : start + size] = np.nan
        return out
