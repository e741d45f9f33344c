"""Difficulty factors of the synthetic data: what makes real fingerspelling hard to read.

The plain synthetic data (every factor off) is easy: each character is one clearly separable hand
shape, held for a few frames, seen through a steady camera. A model that reads it well proves the
pipeline works, not that one recipe beats another. Each factor below adds one documented property
of Kaggle's MediaPipe fingerspelling recordings; ``--difficulty hard`` turns them all on and
``--without`` turns single ones off again (the README's difficulty table).

Every factor draws from its own random stream (``factor_rng``), so switching one factor off leaves
the others' draws unchanged, and with all factors off the generator writes exactly the plain data.

=================  =============================================================================
factor             the property of the real data it imitates
=================  =============================================================================
signers            Kaggle's 94 signers recorded themselves on their phones: signing rate (fluent
                   signers ~2 frames per letter at 30 fps, learners ~8), hand size, and each
                   signer's own form of each letter differ (ASL has regional and personal
                   variants); the score that matters is on signers never seen in training.
lookalikes         ASL letters come in families that differ only by a detail: a/e/m/n/s/t are
                   all a closed fist and differ by the thumb, u/v/r/h/2 by two fingers' spread,
                   crossing or orientation, k/p and g/q by orientation, i/j and d/z/1 by a motion
                   or nothing at all, c/o/0, w/6, f/9 are the same shape.
coarticulation     in fluent fingerspelling a letter's shape is pulled toward its neighbours and
                   transitions take about as long as the letters themselves (Keane 2014, "Towards
                   an articulatory model of handshape"); holds rarely reach the citation form.
skips              fast signers drop letters (partially formed in passing, no hold at all), so
                   the label has characters the video barely shows.
doubles            double letters (``ll``, ``00``) are shown by a small bounce or a slide, often
                   only by a longer hold.
tracking           MediaPipe loses the hand for bursts of frames (motion blur, the hand leaving
                   the frame, occlusion): a large share of Kaggle's frames have NaN hands.
hand_swaps         MediaPipe's handedness is sometimes wrong for a few frames: the signing hand's
                   points appear in the other hand's columns.
noise              landmark jitter is a few pixels, large for fingertips; MediaPipe's z is a
                   weak monocular estimate, far noisier than x and y; single frames are mis-fit.
camera             phones held at any angle and distance: wider in-plane rotation, scale, shift,
                   and the foreshortening of a camera not facing the signer.
label_noise        the label is the prompted phrase, not a transcript: a small share of videos
                   sign something else (a typo, a different phrase) or stop before the end.
=================  =============================================================================

Strengths are the constants below (one place to change them); a factor is on or off.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np

from aslfs_pl.vocab import CHAR_TO_INDEX

# ---- signers ------------------------------------------------------------------------------------
#: Range of a signer's mean hold length, frames per letter (before transitions).
FRAMES_PER_LETTER = (2.0, 8.0)
#: Range of hand sizes (1 = average).
HAND_SIZE = (0.75, 1.3)
#: Spread (hand-local units; palm length ~1) of a signer's own offset of each letter's points.
LETTER_FORM_SIGMA = 0.07
# ---- lookalikes ---------------------------------------------------------------------------------
#: Letters that share one base shape; members differ by LOOKALIKE_SPREAD x their own difference.
LOOKALIKE_FAMILIES = ("aemnst", "uvrh2", "kp", "gq", "ij", "dz1", "co0", "w6", "f9")
LOOKALIKE_SPREAD = 0.15
# ---- coarticulation -----------------------------------------------------------------------------
#: Range of the pull of a held shape toward the mean of its neighbours.
COARTICULATION = (0.15, 0.4)
#: Range of a transition's length relative to the mean of its two holds.
TRANSITION_RATIO = (0.5, 1.2)
# ---- skips --------------------------------------------------------------------------------------
#: Chance that an inner letter is skipped: SKIP_RATE[0] for the slowest signers, [1] the fastest.
SKIP_RATE = (0.02, 0.12)
# ---- doubles ------------------------------------------------------------------------------------
#: Chance that a double letter is shown by a longer hold only (no bounce).
HOLD_ONLY_DOUBLE = 0.5
# ---- tracking -----------------------------------------------------------------------------------
#: Range of the fraction of frames lost in bursts, and the burst lengths (frames).
LOST_FRACTION = (0.05, 0.35)
LOST_BURST = (4, 25)
# ---- hand swaps ---------------------------------------------------------------------------------
#: Share of sequences with swaps; fraction of their frames swapped; burst lengths.
SWAP_SEQUENCES = 0.3
SWAP_FRACTION = (0.03, 0.15)
SWAP_BURST = (2, 10)
# ---- noise --------------------------------------------------------------------------------------
#: Extra per-point jitter (image units), extra z noise (hand-size units), mis-fit frames.
JITTER = (0.002, 0.005)
DEPTH_NOISE = 0.25
MISFIT_FRAMES = 0.02
MISFIT_SIGMA = 0.015
# ---- camera -------------------------------------------------------------------------------------
ROTATION_DEG = 30.0
SCALE = (0.65, 1.4)
SHIFT = 0.12
YAW_PITCH_DEG = 35.0
# ---- label noise --------------------------------------------------------------------------------
#: Share of sequences whose label is not what was signed (typo, other phrase, stopped early).
WRONG_LABELS = 0.04


@dataclass(frozen=True)
class Difficulty:
    """Which difficulty factors are on (see the module docstring for what each imitates)."""

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


# ---- signers --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignerStyle:
    """A signer's own way of fingerspelling (the ``signers`` factor)."""

    frames_per_letter: float
    hand_size: float
    letter_forms: np.ndarray
    """(59, 21, 3) offset of each letter's points from the shared form, hand-local units."""
    skip_rate: float
    """Chance of skipping an inner letter (``skips``): the faster the signer, the higher."""
    coarticulation: float
    """Pull of a held shape toward its neighbours (``coarticulation``)."""


def draw_style(rng: np.random.Generator, num_characters: int) -> SignerStyle:
    rate = float(rng.uniform(*FRAMES_PER_LETTER))
    fast = (FRAMES_PER_LETTER[1] - rate) / (FRAMES_PER_LETTER[1] - FRAMES_PER_LETTER[0])
    return SignerStyle(
        frames_per_letter=rate,
        hand_size=float(rng.uniform(*HAND_SIZE)),
        letter_forms=rng.normal(0.0, LETTER_FORM_SIGMA, (num_characters, 21, 3)),
        skip_rate=SKIP_RATE[0] + fast * (SKIP_RATE[1] - SKIP_RATE[0]),
        coarticulation=float(rng.uniform(*COARTICULATION)),
    )


def average_style(num_characters: int) -> SignerStyle:
    """The population's average style: what ``coarticulation``/``skips`` use without ``signers``."""
    return SignerStyle(
        frames_per_letter=sum(FRAMES_PER_LETTER) / 2,
        hand_size=1.0,
        letter_forms=np.zeros((num_characters, 21, 3)),
        skip_rate=sum(SKIP_RATE) / 2,
        coarticulation=sum(COARTICULATION) / 2,
    )


# ---- lookalikes -----------------------------------------------------------------------------------
def lookalike_templates(templates: np.ndarray) -> np.ndarray:
    """Pull the members of each look-alike family toward the family's first member.

    Args:
        templates: (59, 21, 3) hand-local character shapes.

    Returns:
        (59, 21, 3) shapes; letters outside the families are unchanged.
    """
    out = templates.copy()
    for family in LOOKALIKE_FAMILIES:
        base = templates[CHAR_TO_INDEX[family[0]]]
        for ch in family[1:]:
            i = CHAR_TO_INDEX[ch]
            out[i] = base + LOOKALIKE_SPREAD * (templates[i] - base)
    return out


# ---- timing ---------------------------------------------------------------------------------------
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


def transition_lengths(rng: np.random.Generator, holds: np.ndarray) -> np.ndarray:
    """(n-1,) transition frames about as long as the holds around them (``coarticulation``)."""
    mean_hold = 0.5 * (holds[:-1] + holds[1:]).astype(float)
    ratio = rng.uniform(*TRANSITION_RATIO, len(mean_hold))
    return np.maximum(1, np.round(ratio * np.maximum(mean_hold, 1.0))).astype(int)


def coarticulate(keys: np.ndarray, pull: float, skipped: np.ndarray) -> np.ndarray:
    """Pull each held shape toward the mean of its neighbours; skipped letters half-way.

    Args:
        keys: (n, 21, 3) the phrase's letter shapes.
        pull: 0 (citation forms) .. 1 (the neighbours' mean).
        skipped: (n,) bool letters passed without a hold.

    Returns:
        (n, 21, 3) shapes.
    """
    n = len(keys)
    if n < 2:
        return keys
    prev = np.concatenate([keys[:1], keys[:-1]])
    nxt = np.concatenate([keys[1:], keys[-1:]])
    mean = 0.5 * (prev + nxt)
    w = np.where(skipped, 0.5, pull)[:, None, None]
    return (1 - w) * keys + w * mean


# ---- tracking, noise, camera ------------------------------------------------------------------------
def add_noise(rng: np.random.Generator, hand: np.ndarray, hand_size: float) -> np.ndarray:
    """Extra jitter, depth noise and mis-fit frames on (T, 21, 3) image-space hand points."""
    t = hand.shape[0]
    out = hand + rng.normal(0.0, rng.uniform(*JITTER), hand.shape)
    out[..., 2] += rng.normal(0.0, DEPTH_NOISE * hand_size, (t, 21))
    misfit = rng.random(t) < MISFIT_FRAMES
    out[misfit] += rng.normal(0.0, MISFIT_SIGMA, (int(misfit.sum()), 21, 3))
    return out


def camera(rng: np.random.Generator, theta: float) -> tuple[float, np.ndarray, np.ndarray]:
    """A wider camera: rotation (the plain draw ``theta`` in +-15 deg, doubled), scale, shift and
    the foreshortening of a turned camera.

    Returns:
        (theta rad, scale (2,) for x and y, shift (2,)).
    """
    theta = 2.0 * theta * ROTATION_DEG / 30.0
    scale = rng.uniform(*SCALE)
    yaw, pitch = np.deg2rad(rng.uniform(-YAW_PITCH_DEG, YAW_PITCH_DEG, 2))
    return theta, scale * np.array([math.cos(yaw), math.cos(pitch)]), rng.uniform(-SHIFT, SHIFT, 2)


# ---- labels ---------------------------------------------------------------------------------------
def mislabel(rng: np.random.Generator, phrase: str, other: str, alphabet: str) -> tuple[str, str]:
    """What a video shows and what its label says (``label_noise``).

    Most videos sign their phrase. A share ``WRONG_LABELS`` does not, in three equal kinds: a
    one-character typo in the label, a different phrase (``other``) signed, or the signer stopped
    early (only a prefix signed).

    Returns:
        (signed phrase, label).
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
