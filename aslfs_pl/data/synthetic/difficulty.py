"""Difficulty factors of the synthetic data: what makes real fingerspelling hard to read.

The plain synthetic data (every factor off) is easy: each character is one clearly separable hand
shape, held for a few frames, seen through a steady camera. A model that reads it well proves the
pipeline works, not that one recipe beats another. Each factor adds one documented property of
Kaggle's MediaPipe fingerspelling recordings; ``--difficulty hard`` turns them all on and
``--without`` turns single ones off again (RESULTS.md's difficulty table). A factor's section
(the ``signers`` factor's is :mod:`aslfs_pl.data.synthetic.signers`) holds its strengths (one
place to change them) and the function that applies it, whose docstring names what it imitates;
off, that function hands its input back unchanged.

Every factor draws from its own random stream (``factor_rng``), so switching one factor off leaves
the others' draws unchanged, and with all factors off the generator writes exactly the plain data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from aslfs_pl.vocab import CHAR_TO_INDEX

if TYPE_CHECKING:
    from aslfs_pl.data.synthetic.signers import SignerStyle


@dataclass(frozen=True)
class Difficulty:
    """Which difficulty factors are on; each is documented at the function applying it. The
    field order is part of the data: it numbers the factors' random streams."""

    signers: bool = False
    lookalikes: bool = False
    coarticulation: bool = False
    skips: bool = False
    doubles: bool = False
    tracking: bool = False
    hand_swaps: bool = False
    noise: bool = False
    camera: bool = False
    label_noise: bool = False

    @classmethod
    def factors(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def preset(cls, name: str, without: Iterable[str] = ()) -> Difficulty:
        """``"plain"`` (all off) or ``"hard"`` (all on), minus the factors named in ``without``."""
        if name not in ("plain", "hard"):
            raise ValueError(f"difficulty {name!r}: choose 'plain' or 'hard'")
        without = set(without)
        unknown = without - set(cls.factors())
        if unknown:
            raise ValueError(
                f"unknown difficulty factor(s) {sorted(unknown)}; factors: {', '.join(cls.factors())}"
            )
        return cls(**{f: name == "hard" and f not in without for f in cls.factors()})

    @property
    def any(self) -> bool:
        return any(getattr(self, f) for f in self.factors())

    def describe(self) -> str:
        on = [f for f in self.factors() if getattr(self, f)]
        if not on:
            return "plain"
        if len(on) == len(self.factors()):
            return "hard"
        return "+".join(on)


def factor_rng(key: Iterable[int], factor: str) -> np.random.Generator:
    """The random stream of one factor for one draw site (``key``: e.g. seed, split, sequence)."""
    return np.random.default_rng([*key, 1000 + Difficulty.factors().index(factor)])


# ---- lookalikes -----------------------------------------------------------------------------------
#: Letters that share one base shape; members differ by LOOKALIKE_SPREAD x their own difference.
LOOKALIKE_FAMILIES = ("aemnst", "uvrh2", "kp", "gq", "ij", "dz1", "co0", "w6", "f9")
LOOKALIKE_SPREAD = 0.15


def lookalike_templates(templates: np.ndarray) -> np.ndarray:
    """(59, 21, 3) character shapes with each look-alike family's members pulled toward its first
    member; letters outside the families are unchanged."""
    out = templates.copy()
    for family in LOOKALIKE_FAMILIES:
        base = templates[CHAR_TO_INDEX[family[0]]]
        for ch in family[1:]:
            i = CHAR_TO_INDEX[ch]
            out[i] = base + LOOKALIKE_SPREAD * (templates[i] - base)
    return out


def letter_shapes(d: Difficulty, templates: np.ndarray) -> np.ndarray:
    """The character shapes signed: ``templates``, or their :func:`lookalike_templates`.

    Imitates: ASL letters come in families that differ only by a detail: a/e/m/n/s/t are all a
    closed fist and differ by the thumb, u/v/r/h/2 by two fingers' spread, crossing or
    orientation, k/p and g/q by orientation, i/j and d/z/1 by a motion or nothing at all, c/o/0,
    w/6, f/9 are the same shape.
    """
    return lookalike_templates(templates) if d.lookalikes else templates


# ---- coarticulation -------------------------------------------------------------------------------
#: Range of the pull of a held shape toward the mean of its neighbours.
COARTICULATION = (0.15, 0.4)
#: Range of a transition's length relative to the mean of its two holds.
TRANSITION_RATIO = (0.5, 1.2)


def coarticulated_transitions(
    d: Difficulty, key: Iterable[int], holds: np.ndarray, transitions: np.ndarray
) -> np.ndarray:
    """(n-1,) transition frames: about as long as the holds around them with ``coarticulation``
    on, else ``transitions``.

    Imitates: in fluent fingerspelling a letter's shape is pulled toward its neighbours and
    transitions take about as long as the letters themselves (Keane 2014, "Towards an
    articulatory model of handshape"); holds rarely reach the citation form (:func:`held_shapes`).
    """
    if not d.coarticulation:
        return transitions
    rng = factor_rng(key, "coarticulation")
    mean_hold = 0.5 * (holds[:-1] + holds[1:]).astype(float)
    ratio = rng.uniform(*TRANSITION_RATIO, len(mean_hold))
    return np.maximum(1, np.round(ratio * np.maximum(mean_hold, 1.0))).astype(int)


def held_shapes(
    d: Difficulty, style: SignerStyle, keys: np.ndarray, skipped: np.ndarray
) -> np.ndarray:
    """The phrase's (n, 21, 3) letter shapes as held: each pulled toward the mean of its
    neighbours by the signer's ``coarticulation`` (0: citation forms, 1: the neighbours' mean),
    the ``skipped`` (n,) letters half-way (formed in passing). Untouched with both factors off.
    """
    n = len(keys)
    if not (d.coarticulation or d.skips) or n < 2:
        return keys
    prev = np.concatenate([keys[:1], keys[:-1]])
    nxt = np.concatenate([keys[1:], keys[-1:]])
    mean = 0.5 * (prev + nxt)
    pull = style.coarticulation if d.coarticulation else 0.0
    w = np.where(skipped, 0.5, pull)[:, None, None]
    return (1 - w) * keys + w * mean


# ---- skips ----------------------------------------------------------------------------------------
#: Chance that an inner letter is skipped: SKIP_RATE[0] for the slowest signers, [1] the fastest.
SKIP_RATE = (0.02, 0.12)


def skipped_letters(rng: np.random.Generator, idx: np.ndarray, rate: float) -> np.ndarray:
    """(n,) bool: inner letters, not part of a double, that the signer skips."""
    n = len(idx)
    skip = rng.random(n) < rate
    skip[0] = skip[-1] = False
    if n > 2:
        same = np.zeros(n, dtype=bool)
        same[1:] |= idx[1:] == idx[:-1]
        same[:-1] |= idx[1:] == idx[:-1]
        skip &= ~same
    skip[1:] &= ~skip[:-1]  # never two in a row
    return skip


def skips(d: Difficulty, key: Iterable[int], idx: np.ndarray, rate: float) -> np.ndarray:
    """(n,) bool letters signed without a hold (all False with ``skips`` off).

    Imitates: fast signers drop letters (partially formed in passing, no hold at all), so the
    label has characters the video barely shows.
    """
    if not d.skips:
        return np.zeros(len(idx), dtype=bool)
    return skipped_letters(factor_rng(key, "skips"), idx, rate)


# ---- doubles --------------------------------------------------------------------------------------
#: Chance that a double letter is shown by a longer hold only (no bounce).
HOLD_ONLY_DOUBLE = 0.5


def bounced_doubles(d: Difficulty, key: Iterable[int], repeat: np.ndarray) -> np.ndarray:
    """(n-1,) bool: the double letters (``repeat``) shown by a bounce; with ``doubles`` on, the
    others are shown by a longer hold only.

    Imitates: double letters (``ll``, ``00``) are shown by a small bounce or a slide, often only
    by a longer hold.
    """
    bounce = repeat.copy()
    if d.doubles:
        bounce &= factor_rng(key, "doubles").random(len(repeat)) >= HOLD_ONLY_DOUBLE
    return bounce


# ---- tracking -------------------------------------------------------------------------------------
#: Range of the fraction of frames lost in bursts, and the burst lengths (frames).
LOST_FRACTION = (0.05, 0.35)
LOST_BURST = (4, 25)


def bursts(rng: np.random.Generator, n: int, fraction: float, lo: int, hi: int) -> np.ndarray:
    """(n,) bool covering ~``fraction`` of the frames with single frames and bursts of ``lo..hi``
    frames: how MediaPipe misses a hand, so the plain data's drops use it too."""
    mask = np.zeros(n, dtype=bool)
    target = int(round(fraction * n))
    guard = 0
    while mask.sum() < target and guard < 10 * n + 10:
        start = int(rng.integers(n))
        length = 1 if rng.random() < 0.4 else int(rng.integers(lo, hi + 1))
        mask[start : start + min(length, target - int(mask.sum()))] = True
        guard += 1
    return mask


def lost_frames(d: Difficulty, key: Iterable[int], n: int) -> np.ndarray:
    """(n,) bool frames whose signing hand is lost (all False with ``tracking`` off).

    Imitates: MediaPipe loses the hand for bursts of frames (motion blur, the hand leaving the
    frame, occlusion): a large share of Kaggle's frames have NaN hands.
    """
    if not d.tracking:
        return np.zeros(n, dtype=bool)
    rng = factor_rng(key, "tracking")
    return bursts(rng, n, rng.uniform(*LOST_FRACTION), *LOST_BURST)


# ---- hand swaps -----------------------------------------------------------------------------------
#: Share of sequences with swaps; fraction of their frames swapped; burst lengths.
SWAP_SEQUENCES = 0.3
SWAP_FRACTION = (0.03, 0.15)
SWAP_BURST = (2, 10)


def swap_hands(
    d: Difficulty, key: Iterable[int], dominant: np.ndarray, other: np.ndarray, lost: np.ndarray
) -> None:
    """Move the signing hand's columns (``dominant``, a (3, 21, T) view) into the ``other``
    hand's for bursts of frames, in place; never on a ``lost`` (T,) frame.

    Imitates: MediaPipe's handedness is sometimes wrong for a few frames: the signing hand's
    points appear in the other hand's columns.
    """
    if not d.hand_swaps:
        return
    rng = factor_rng(key, "hand_swaps")
    if rng.random() >= SWAP_SEQUENCES:
        return
    frac = rng.uniform(*SWAP_FRACTION)
    swap = bursts(rng, len(lost), frac, *SWAP_BURST) & ~lost
    other[..., swap] = dominant[..., swap]
    dominant[..., swap] = np.nan


# ---- noise ----------------------------------------------------------------------------------------
#: Extra per-point jitter (image units), extra z noise (hand-size units), mis-fit frames.
JITTER = (0.002, 0.005)
DEPTH_NOISE = 0.25
MISFIT_FRAMES = 0.02
MISFIT_SIGMA = 0.015


def _add_noise(rng: np.random.Generator, hand: np.ndarray, hand_size: float) -> np.ndarray:
    """Extra jitter, depth noise and mis-fit frames on (T, 21, 3) image-space hand points."""
    t = hand.shape[0]
    out = hand + rng.normal(0.0, rng.uniform(*JITTER), hand.shape)
    out[..., 2] += rng.normal(0.0, DEPTH_NOISE * hand_size, (t, 21))
    misfit = rng.random(t) < MISFIT_FRAMES
    out[misfit] += rng.normal(0.0, MISFIT_SIGMA, (int(misfit.sum()), 21, 3))
    return out


def noisy_hands(
    d: Difficulty, key: Iterable[int], hand: np.ndarray, other: np.ndarray, hand_size: float
) -> tuple[np.ndarray, np.ndarray]:
    """Both (T, 21, 3) image-space hands with extra jitter, depth noise and mis-fit frames
    (signing hand first, one stream), unchanged with ``noise`` off.

    Imitates: landmark jitter is a few pixels, large for fingertips; MediaPipe's z is a weak
    monocular estimate, far noisier than x and y; single frames are mis-fit.
    """
    if not d.noise:
        return hand, other
    rng = factor_rng(key, "noise")
    return _add_noise(rng, hand, hand_size), _add_noise(rng, other, hand_size)


# ---- camera ---------------------------------------------------------------------------------------
ROTATION_DEG = 30.0
SCALE = (0.65, 1.4)
SHIFT = 0.12
YAW_PITCH_DEG = 35.0


def camera_view(
    d: Difficulty, key: Iterable[int], theta: float, scale: float, shift: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """The body's in-plane rotation (rad), x/y scale (2,) and shift (2,): the plain draws, or with
    ``camera`` on the plain ``theta`` (+-15 deg) doubled, a wider scale, foreshortening by a
    turned camera and an extra shift.

    Imitates: phones held at any angle and distance: wider in-plane rotation, scale, shift, and
    the foreshortening of a camera not facing the signer.
    """
    if not d.camera:
        return theta, np.array([scale, scale]), shift
    rng = factor_rng(key, "camera")
    theta = 2.0 * theta * ROTATION_DEG / 30.0
    scale = rng.uniform(*SCALE)
    yaw, pitch = np.deg2rad(rng.uniform(-YAW_PITCH_DEG, YAW_PITCH_DEG, 2))
    scale_xy = scale * np.array([math.cos(yaw), math.cos(pitch)])
    return theta, scale_xy, shift + rng.uniform(-SHIFT, SHIFT, 2)


# ---- label noise ----------------------------------------------------------------------------------
#: Share of sequences whose label is not what was signed (typo, other phrase, stopped early).
WRONG_LABELS = 0.04
#: Characters a typo puts into a label.
TYPO_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def mislabel(rng: np.random.Generator, phrase: str, other: str, alphabet: str) -> tuple[str, str]:
    """(signed phrase, label): what a video shows and what its label says (``label_noise``).

    Most videos sign their phrase. A share ``WRONG_LABELS`` does not, in three equal kinds: a
    one-character typo in the label, a different phrase (``other``) signed, or the signer stopped
    early (only a prefix signed).
    """
    if rng.random() >= WRONG_LABELS:
        return phrase, phrase
    kind = int(rng.integers(3))
    if kind == 0:
        pos = int(rng.integers(len(phrase)))
        ch = alphabet[int(rng.integers(len(alphabet)))]
        edit = int(rng.integers(3)) if len(phrase) > 1 else 0
        typo = (
            phrase[:pos] + ch + phrase[pos + 1 :],  # substituted
            phrase[:pos] + phrase[pos + 1 :],  # dropped
            phrase[:pos] + ch + phrase[pos:],  # inserted
        )[edit]
        return phrase, typo[:31]
    if kind == 1:
        return other, phrase
    keep = max(1, int(round(len(phrase) * rng.uniform(0.4, 0.9))))
    return phrase[:keep], phrase


def labelled(
    d: Difficulty, key: Iterable[int], phrase: str, other_phrase: Callable[..., str]
) -> tuple[str, str]:
    """(signed phrase, label): ``phrase`` both times, unless ``label_noise`` makes them differ
    (:func:`mislabel`; ``other_phrase(rng)`` draws the phrase signed instead).

    Imitates: the label is the prompted phrase, not a transcript: a small share of videos sign
    something else (a typo, a different phrase) or stop before the end.
    """
    if not d.label_noise:
        return phrase, phrase
    rng = factor_rng(key, "label_noise")
    return mislabel(rng, phrase, other_phrase(rng), TYPO_LETTERS)
