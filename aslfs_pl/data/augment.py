"""Training-only augmentations of one landmark sequence.

All functions take and return ``(T, A, P)`` float32 arrays (frames, axes, points: the layout of a
row of Kaggle's axis-major columns, so a (T, C) block is viewed without copying) in raw image
coordinates (NaN where a landmark is unseen) and draw from the ``numpy.random.Generator`` they are given, so a sequence's
augmentation depends only on (seed, epoch, sequence) and never on which worker reads it.

Note that the model normalises every frame by its own centre and spread
(:func:`aslfs_pl.model.features.normalise_frames`), so a rigid global shift or uniform scale alone
would be invisible to it; shift therefore also moves each hand relative to the body, and scale
stretches x and y independently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

HAND_FINGERS: tuple[tuple[int, ...], ...] = (
    (1, 2, 3, 4),
    (5, 6, 7, 8),
    (9, 10, 11, 12),
    (13, 14, 15, 16),
    (17, 18, 19, 20),
)  # MediaPipe hand points of thumb, index, middle, ring, little finger


@dataclass
class AugmentConfig:
    """Probability and strength of each augmentation (training only; 0 disables one)."""

    flip_p: float = 0.5
    """Left/right mirror: x -> 1 - x, hands and paired lip/pose points swapped."""
    rotate_p: float = 0.5
    """Rotation of the x-y plane about the sequence centre."""
    rotate_max_deg: float = 15.0
    """Largest rotation angle, degrees."""
    scale_p: float = 0.5
    """Independent stretch of x and y about the sequence centre."""
    scale_range: tuple[float, float] = (0.8, 1.2)
    """Range of each axis' scale factor."""
    shift_p: float = 0.5
    """Shift of the whole body plus an independent offset of each hand relative to it."""
    shift_max: float = 0.1
    """Largest global shift, image units."""
    hand_shift_max: float = 0.05
    """Largest per-hand offset, image units."""
    speed_p: float = 0.5
    """Time resampling (signing speed change)."""
    speed_range: tuple[float, float] = (0.7, 1.3)
    """Range of the speed factor (new length = old length / factor)."""
    frame_drop_p: float = 0.3
    """Random frame dropping."""
    frame_drop_rate: float = 0.1
    """Fraction of frames dropped when it applies (at least one frame is always kept)."""
    finger_drop_p: float = 0.2
    """Fingers hidden (NaN) for a random window of frames."""
    finger_drop_max: int = 2
    """Most fingers hidden at once."""
    hand_drop_p: float = 0.2
    """A hand hidden (NaN) for random frames, as when MediaPipe loses it."""
    hand_drop_rate: float = 0.2
    """Fraction of frames in which the hand is hidden when it applies."""
    face_drop_p: float = 0.0
    """The face's points hidden (NaN) in every frame, as when MediaPipe misses the face or the
    signer turns away (the 1st place's face dropout). 0: off (the seed)."""
    pose_drop_p: float = 0.0
    """The pose's points hidden (NaN) in every frame (the 1st place's pose dropout). 0: off."""
    finger_affine_p: float = 0.0
    """Per-finger affine: each finger of each hand rotated and scaled about its base joint
    (a signer's own finger proportions and letter forms). 0: off (the seed)."""
    finger_affine_deg: float = 10.0
    """Largest per-finger rotation, degrees."""
    finger_affine_scale: tuple[float, float] = (0.9, 1.1)
    """Range of a finger's scale factor."""
    mix_p: float = 0.0
    """Sequence mixing: a training row becomes itself followed by the batch's next sequence,
    frames and phrase concatenated, when the phrases fit max_target_len (frames beyond
    max_frames are resampled, as for any long sequence). 0: off."""
    cutmix_p: float = 0.0
    """CutMix along time (the 1st place's): a training row becomes the head of itself and the
    tail of the batch's next sequence, both cut at the same random fraction of their frames and
    of their phrases. 0: off."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if name.endswith("_p") and not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} = {value}: a probability must lie in [0, 1]")
        for name in ("scale_range", "speed_range", "finger_affine_scale"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"augment.{name} = {(lo, hi)}: need 0 < low <= high")
        if not 0.0 <= self.frame_drop_rate < 1.0 or not 0.0 <= self.hand_drop_rate <= 1.0:
            raise ValueError("augment: drop rates must lie in [0, 1)")


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
    """x, y -> matrix @ (x, y - about) + about + offset (z untouched)."""
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
    _offset_points(out, hand_offsets)
    return out


def _offset_points(pts: np.ndarray, offsets: dict[tuple[int, ...], np.ndarray]) -> None:
    """In place: add ``offsets[points]`` (2,) to the x, y of those points."""
    for idx, off in offsets.items():
        pts[:, 0, list(idx)] += off[0]
        pts[:, 1, list(idx)] += off[1]


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


def hide(pts: np.ndarray, points: list[int], frames: np.ndarray) -> np.ndarray:
    """Set ``points`` to NaN in the frames where ``frames`` (T,) is True."""
    out = pts.copy()
    out[np.ix_(np.flatnonzero(frames), np.arange(pts.shape[1]), points)] = np.nan
    return out


class Augmenter:
    """Applies the configured augmentations in a fixed order with their probabilities.

    Args:
        config: probabilities and strengths.
        mirror: ``LandmarkSet.mirror_permutation()``.
        parts: ``LandmarkSet.part_slices()``: the positions of each part's points. A hand is
            augmented when all its 21 points (MediaPipe order) are selected.
    """

    def __init__(self, config: AugmentConfig, mirror: list[int], parts: dict[str, list[int]]):
        self.config = config
        self.mirror = mirror
        hands = [parts.get("left_hand", []), parts.get("right_hand", [])]
        self.hands = [h for h in hands if len(h) == 21]
        self.face = parts.get("face", [])
        self.pose = parts.get("pose", [])

    def __call__(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        if pts.shape[0] == 0:
            return pts
        if rng.random() < cfg.flip_p:
            pts = flip(pts, self.mirror)
        # Rotation, stretch and global shift compose into one affine map about the centre.
        matrix = np.eye(2, dtype=np.float32)
        offset = np.zeros(2, np.float32)
        if rng.random() < cfg.rotate_p:
            matrix = rotation(rng.uniform(-cfg.rotate_max_deg, cfg.rotate_max_deg)) @ matrix
        if rng.random() < cfg.scale_p:
            matrix = np.diag(rng.uniform(*cfg.scale_range, size=2)).astype(np.float32) @ matrix
        hand_offsets = {}
        if rng.random() < cfg.shift_p:
            offset = rng.uniform(-cfg.shift_max, cfg.shift_max, size=2).astype(np.float32)
            hand_offsets = {
                tuple(h): rng.uniform(-cfg.hand_shift_max, cfg.hand_shift_max, 2).astype(np.float32)
                for h in self.hands
            }
        if hand_offsets or offset.any() or not np.array_equal(matrix, np.eye(2)):
            pts = affine(pts, matrix, centre(pts), offset)  # a copy: the input is never changed
            _offset_points(pts, hand_offsets)
        if self.hands and cfg.finger_affine_p > 0 and rng.random() < cfg.finger_affine_p:
            for hand in self.hands:
                deg = rng.uniform(-cfg.finger_affine_deg, cfg.finger_affine_deg, len(HAND_FINGERS))
                pts = finger_affine(pts, hand, deg, rng.uniform(*cfg.finger_affine_scale, 5))
        if rng.random() < cfg.speed_p:
            pts = resample_time(pts, rng.uniform(*cfg.speed_range))
        if rng.random() < cfg.frame_drop_p and pts.shape[0] > 1:
            pts = drop_frames(pts, rng.random(pts.shape[0]) >= cfg.frame_drop_rate)
        t = pts.shape[0]
        if self.hands and rng.random() < cfg.finger_drop_p:
            hand = self.hands[rng.integers(len(self.hands))]
            n = rng.integers(1, cfg.finger_drop_max + 1)
            fingers = rng.choice(len(HAND_FINGERS), size=n, replace=False)
            idx = [hand[i] for f in fingers for i in HAND_FINGERS[f]]
            start = rng.integers(t)
            window = np.zeros(t, bool)
            window[start : start + rng.integers(1, t + 1)] = True
            pts = hide(pts, idx, window)
        if self.hands and rng.random() < cfg.hand_drop_p:
            hand = self.hands[rng.integers(len(self.hands))]
            pts = hide(pts, hand, rng.random(t) < cfg.hand_drop_rate)
        for points, p in ((self.face, cfg.face_drop_p), (self.pose, cfg.pose_drop_p)):
            if points and p > 0 and rng.random() < p:
                pts = hide(pts, points, np.ones(t, bool))
        return pts


def mix_sequences(
    items: list[dict],
    p: float,
    rng_for: Callable[[dict], np.random.Generator],
    max_frames: int,
    max_target_len: int,
    min_frames_per_char: float,
) -> list[dict]:
    """Sequence mixing (``AugmentConfig.mix_p``) over a batch's items (dicts with ``frames``
    (T, C), ``phrase`` and ``sequence_id``; ``frames`` None for a skipped row).

    Row i may become sequence i followed by sequence i + 1 of the batch, frames and phrases
    concatenated (no separator: nothing is signed between them), with probability ``p`` drawn
    from ``rng_for(item)``, if :func:`mix_fits`. A result longer than ``max_frames`` is resampled
    to it later like any long sequence (:func:`~aslfs_pl.model.features.fit_length`): at 128
    frames only ~0.5% of the hard benchmark's pairs would fit without it. Returns ``items``
    itself when ``p`` is 0.
    """
    if p <= 0 or len(items) < 2:
        return items
    out = list(items)
    for i, a, b in neighbours(items):
        rng = rng_for(a)
        if mix_fits(a, b, max_frames, max_target_len, min_frames_per_char) and rng.random() < p:
            frames = np.concatenate([a["frames"], b["frames"]])
            out[i] = {**a, "frames": frames, "phrase": a["phrase"] + b["phrase"]}
    return out


def neighbours(items: list[dict]) -> Iterator[tuple[int, dict, dict]]:
    """(i, row i, row i + 1) of a batch (the last row's neighbour is the first), for every pair
    of rows that both hold frames (not skipped)."""
    for i, a in enumerate(items):
        b = items[(i + 1) % len(items)]
        if a["frames"] is not None and b["frames"] is not None:
            yield i, a, b


def mix_fits(
    a: dict, b: dict, max_frames: int, max_target_len: int, min_frames_per_char: float
) -> bool:
    """Both phrases fit ``max_target_len``, and after resampling to ``max_frames`` each part
    keeps ``min_frames_per_char`` frames per character of its phrase."""
    if len(a["phrase"]) + len(b["phrase"]) >= max_target_len:
        return False
    kept = min(1.0, max_frames / (len(a["frames"]) + len(b["frames"])))
    return all(len(x["frames"]) * kept >= min_frames_per_char * len(x["phrase"]) for x in (a, b))


def cut_mix(
    items: list[dict], p: float, rng_for: Callable[[dict], np.random.Generator]
) -> list[dict]:
    """CutMix along time (``AugmentConfig.cutmix_p``) over a batch's items (dicts as for
    :func:`mix_sequences`).

    With probability ``p`` drawn from ``rng_for(item)``, row i becomes the head of sequence i and
    the tail of sequence i + 1 of the batch: both cut at one fraction u ~ U(0, 1) of their frames
    and of their characters (each cut kept inside, so both parts keep at least one frame and one
    character). The mixed phrase is never longer than the longer of the two (both cuts round
    the same fraction), so it fits wherever they did. A row stays as it is when it or its
    neighbour has fewer than 2 frames or characters or is skipped. Returns ``items`` itself when
    ``p`` is 0.
    """
    if p <= 0 or len(items) < 2:
        return items
    out = list(items)
    for i, a, b in neighbours(items):
        if min(len(a["frames"]), len(b["frames"]), len(a["phrase"]), len(b["phrase"])) < 2:
            continue
        rng = rng_for(a)
        if rng.random() >= p:
            continue
        u = rng.random()
        fa, fb = (_cut(len(x["frames"]), u) for x in (a, b))
        ca, cb = (_cut(len(x["phrase"]), u) for x in (a, b))
        frames = np.concatenate([a["frames"][:fa], b["frames"][fb:]])
        out[i] = {**a, "frames": frames, "phrase": a["phrase"][:ca] + b["phrase"][cb:]}
    return out


def _cut(n: int, u: float) -> int:
    """Where fraction ``u`` cuts ``n`` things, kept inside 1..n-1."""
    return int(np.clip(round(n * u), 1, n - 1))
