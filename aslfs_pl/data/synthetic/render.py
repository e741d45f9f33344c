"""Render one phrase signed by one participant into Kaggle's 543 landmarks per frame.

:func:`synthesize_sequence` is a pipeline: timing, the signing hand's shape and path, the resting
hand, the pose, the camera's view, the face, then the frames where a hand is missing. Each
difficulty factor is applied by its own function in :mod:`aslfs_pl.data.synthetic.difficulty`
(the ``signers`` factor's in :mod:`aslfs_pl.data.synthetic.signers`), at its place in that order. The order of the random draws is part of the data: a change to it changes every
dataset written from a seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from aslfs_pl.data.landmarks import PARTS
from aslfs_pl.data.synthetic import difficulty as hard
from aslfs_pl.data.synthetic import signers
from aslfs_pl.data.synthetic.camera import draw_view
from aslfs_pl.data.synthetic.difficulty import Difficulty, bursts
from aslfs_pl.data.synthetic.face import draw_face
from aslfs_pl.data.synthetic.hands import in_image, rotation, shape_alphabet
from aslfs_pl.data.synthetic.noise import smooth_noise
from aslfs_pl.data.synthetic.participants import Participant
from aslfs_pl.data.synthetic.pose import draw_pose
from aslfs_pl.data.synthetic.timing import AVERAGE_STYLE, Frames, frame_schedule, plan_timing
from aslfs_pl.vocab import CHAR_TO_INDEX

#: Landmarks per frame (468 face + 21 left hand + 33 pose + 21 right hand).
NUM_LANDMARKS: int = sum(PARTS.values())  # 543
#: First landmark of each part in Kaggle's per-axis order.
FACE0, LEFT0, POSE0, RIGHT0 = 0, 468, 489, 522
#: Every difficulty factor off.
PLAIN = Difficulty()


@dataclass
class SyntheticSequence:
    """One generated recording."""

    phrase: str
    columns: np.ndarray
    """(3, 543, T) float32: axis, landmark (Kaggle's order: face, left hand, pose, right hand),
    frame. ``columns.reshape(1629, T)`` are the parquet columns in ``all_columns()`` order."""
    char_at_frame: np.ndarray
    """(T,) int: index into ``phrase`` of the character held at each frame, -1 in transitions."""
    left_handed: bool

    @property
    def num_frames(self) -> int:
        return self.columns.shape[-1]

    @property
    def landmarks(self) -> np.ndarray:
        """(T, 543, 3) float32 view of :attr:`columns`."""
        return self.columns.transpose(2, 1, 0)


def synthesize_sequence(
    phrase: str,
    participant: Participant,
    rng: np.random.Generator,
    *,
    min_frames_per_char: int = 2,
    max_frames_per_char: int = 9,
    target_frames: int | None = None,
    single_frame: bool = False,
    noise_scale: float = 1.0,
    drop_fraction: tuple[float, float] = (0.05, 0.30),
    non_dominant_fraction: float = 0.10,
    difficulty: Difficulty = PLAIN,
    key: tuple[int, ...] = (),
) -> SyntheticSequence:
    """Render one phrase signed by ``participant``: a :class:`SyntheticSequence`.

    Args:
        phrase: text to sign (vocabulary characters, non-empty).
        participant: the signer.
        rng: random generator of this sequence.
        min_frames_per_char, max_frames_per_char: hold frames per character before the speed
            scaling.
        target_frames: if given, stretch holds and transitions to exactly this many frames.
        single_frame: one frame per character, no transitions, no lead-in/out, no drops.
        noise_scale: multiplier of the jitter noise.
        drop_fraction: range of the fraction of frames whose dominant hand is missing (NaN).
        non_dominant_fraction: mean fraction of frames showing the resting non-dominant hand.
        difficulty: the difficulty factors that are on.
        key: identifies this sequence in the factors' random streams
            (:func:`~aslfs_pl.data.synthetic.difficulty.factor_rng`).
    """
    d = difficulty
    idx = np.array([CHAR_TO_INDEX[c] for c in phrase])  # (n,)
    if len(idx) == 0:
        raise ValueError("empty phrase")
    hold = dict(fewest=min_frames_per_char, most=max_frames_per_char, target_frames=target_frames)
    timing = plan_timing(idx, participant, rng, d, key, **hold, single_frame=single_frame)
    frames = frame_schedule(timing)
    side = -1.0 if participant.left_handed else 1.0  # +1: signer's right hand (image left)
    hands = _draw_hands(idx, participant, rng, d, key, timing, frames, side, noise_scale)
    head, pose = draw_pose(rng, frames.t, side, hands.wrist, hands.hand, hands.rest, noise_scale)
    view = draw_view(rng, participant, d, key)
    cols = np.empty((3, NUM_LANDMARKS, frames.num_frames), np.float32)  # axis-major, like Kaggle
    draw_face(cols[:, FACE0:LEFT0], rng, idx, frames, head, view, noise_scale)
    dominant, other_cols = _place_body(cols, view, pose, hands, side)
    _hide_hands(
        rng, d, key, dominant, other_cols, single_frame, drop_fraction, non_dominant_fraction
    )
    return SyntheticSequence(
        phrase=phrase,
        columns=cols,
        char_at_frame=frames.label,
        left_handed=participant.left_handed,
    )


class _Hands(NamedTuple):
    hand: np.ndarray  # (T, 21, 3) the signing hand, image units
    other: np.ndarray  # (T, 21, 3) the resting one
    wrist: np.ndarray
    rest: np.ndarray  # the resting hand's wrist


def _draw_hands(idx, participant, rng, d, key, timing, frames, side, noise_scale) -> _Hands:
    """Both hands in the image: the signing one's shapes at its wrist path, shaken and jittered,
    the resting one, and the ``tracking`` factor's noise on both."""
    shape = _signing_shape(idx, participant, rng, d, timing.skipped, frames, side)
    hand_size = 0.09 * participant.hand_size  # image units per hand-local unit
    wrist = _signing_wrist(rng, len(idx), frames, side)
    hand = in_image(wrist, shape, hand_size)
    sigma = noise_scale * rng.uniform(0.001, 0.0025)
    hand += rng.normal(0.0, 0.001 * noise_scale, (frames.num_frames, 1, 3))  # per-frame shake
    hand += rng.normal(0.0, sigma, hand.shape)
    rest_wrist, other = _resting_hand(rng, frames.t, side, hand_size, sigma)
    hand, other = hard.noisy_hands(d, key, hand, other, hand_size)
    return _Hands(hand, other, wrist, rest_wrist)


def _place_body(
    cols: np.ndarray, view, pose: np.ndarray, hands: _Hands, side: float
) -> tuple[np.ndarray, np.ndarray]:
    """The pose and both hands into ``cols`` (3, 543, T) as the camera sees them; the
    signing and the resting hand's (3, 21, T) views of it."""
    cols[:, POSE0:RIGHT0] = view.place(pose).transpose(2, 1, 0)
    dom_sl = slice(RIGHT0, NUM_LANDMARKS) if side > 0 else slice(LEFT0, POSE0)
    non_sl = slice(LEFT0, POSE0) if side > 0 else slice(RIGHT0, NUM_LANDMARKS)
    cols[:, dom_sl] = view.place(hands.hand).transpose(2, 1, 0)
    cols[:, non_sl] = view.place(hands.other).transpose(2, 1, 0)
    return cols[:, dom_sl], cols[:, non_sl]


def _signing_shape(
    idx: np.ndarray,
    participant: Participant,
    rng: np.random.Generator,
    d: Difficulty,
    skipped: np.ndarray,
    frames: Frames,
    side: float,
) -> np.ndarray:
    """(T, 21, 3) hand-local shape of the signing hand, x-mirrored for a left hand.

    The letters' key shapes (the participant's finger lengths and offsets, their own forms with
    ``signers``, a little noise, pulled by ``coarticulation``/``skips``) are blended frame by
    frame; a double's bounce relaxes the hand toward the neutral shape.
    """
    templates, neutral, _ = shape_alphabet()
    n = len(idx)
    style = participant.style or AVERAGE_STYLE
    style_rot = rotation(participant.roll_bias + rng.normal(0.0, 0.04), 0.0, 0.0)
    letters = hard.letter_shapes(d, templates)[idx]  # (n, 21, 3)
    keys = np.concatenate([letters, neutral[None]], 0)  # (n+1, 21, 3): letters, then rest
    keys = keys * participant.finger_scale[None, :, None] + participant.shape_offset
    keys = signers.own_letter_forms(participant.style, keys, idx)
    keys = keys + rng.normal(0.0, 0.015, keys.shape)
    keys[:n] = hard.held_shapes(d, style, keys[:n], skipped)
    keys = keys @ style_rot.T
    alpha = frames.alpha[..., None]  # (T, 1, 1)
    relax = 0.35 * frames.bump[:, None, None]
    shape = (1 - alpha) * keys[frames.a] + alpha * keys[frames.b]  # (T, 21, 3)
    shape = (1 - relax) * shape + relax * neutral
    shape[..., 0] *= side  # mirror a left hand
    return shape


def _signing_wrist(rng: np.random.Generator, n: int, frames: Frames, side: float) -> np.ndarray:
    """(T, 2) image position of the signing wrist (before the camera's view).

    The hand drifts sideways letter by letter (mostly away from the body's midline, a bounded
    triangle wave so long phrases stay in frame), hops on a double's bounce and wobbles slowly.
    """
    drift_dir = -side * rng.uniform(0.6, 1.0)  # mostly away from the body midline
    step = rng.uniform(0.002, 0.006)
    ks = np.arange(n)
    span = 10 + int(rng.integers(0, 8))
    tri = np.abs(((ks + span) % (2 * span)) - span) - span / 2  # bounded triangle wave
    key_pos = np.zeros((n + 1, 2))
    key_pos[:n, 0] = drift_dir * step * tri + rng.normal(0.0, 0.004, n)
    key_pos[:n, 1] = rng.normal(0.0, 0.004, n) - 0.002 * np.sin(ks)
    key_pos[n] = [0.05 * side, 0.3]  # the hand enters from / leaves towards the bottom
    alpha, bump = frames.alpha, frames.bump
    pos = (1 - alpha) * key_pos[frames.a] + alpha * key_pos[frames.b]  # (T, 2)
    pos[:, 0] += bump * 0.012 * drift_dir
    pos[:, 1] += bump * 0.02
    pos += smooth_noise(rng, frames.t, 0.006, 2)
    return np.array([0.5 - 0.1 * side, 0.62]) + pos


def _resting_hand(
    rng: np.random.Generator, t: np.ndarray, side: float, hand_size: float, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """The non-signing hand, resting low on the other side: (wrist (T, 2), points (T, 21, 3))."""
    _, neutral, _ = shape_alphabet()
    rest_wrist = np.array([0.5 + 0.22 * side, 0.98]) + smooth_noise(rng, t, 0.004, 2)  # (T, 2)
    rest_shape = neutral @ rotation(np.pi + rng.normal(0.0, 0.2), 0.0, 0.0).T  # (21, 3)
    rest_shape = rest_shape * np.array([-side, 1.0, 1.0])
    other = in_image(rest_wrist, rest_shape, hand_size)
    other += rng.normal(0.0, sigma, other.shape)
    return rest_wrist, other


def _hide_hands(
    rng: np.random.Generator,
    d: Difficulty,
    key: Iterable[int],
    dominant: np.ndarray,
    other: np.ndarray,
    single_frame: bool,
    drop_fraction: tuple[float, float],
    non_dominant_fraction: float,
) -> None:
    """Set the frames where MediaPipe would not see a hand to NaN, in place.

    The signing hand is missing in bursts (more with ``tracking``), the resting hand in most
    frames; ``hand_swaps`` then moves the signing hand into the other's columns for a few frames.
    A sequence of one or two frames (or ``single_frame``) always shows its signing hand.

    Args:
        rng: the sequence's generator.
        d: the factors on.
        key: the sequence's key in the factors' streams.
        dominant: (3, 21, T) view of the signing hand's columns.
        other: (3, 21, T) view of the resting hand's columns.
        single_frame: the sequence has one frame per character.
        drop_fraction: range of the fraction of frames without the signing hand.
        non_dominant_fraction: mean fraction of frames showing the resting hand.
    """
    n = dominant.shape[-1]
    may_drop = not single_frame and n > 2
    if may_drop:
        drop = bursts(rng, n, rng.uniform(*drop_fraction), 2, 6) | hard.lost_frames(d, key, n)
        dominant[..., drop] = np.nan
    shown = bursts(rng, n, rng.uniform(0.0, 2 * non_dominant_fraction), 3, 15)
    other[..., ~shown] = np.nan
    if may_drop:
        hard.swap_hands(d, key, dominant, other, drop)
