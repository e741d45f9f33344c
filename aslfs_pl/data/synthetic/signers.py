"""The ``signers`` factor of the hard benchmark (:mod:`aslfs_pl.data.synthetic.difficulty`): each
participant's own way of fingerspelling, drawn from the factor's own stream."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aslfs_pl.data.synthetic.difficulty import COARTICULATION, SKIP_RATE, Difficulty, factor_rng

# ---- signers --------------------------------------------------------------------------------------
#: Range of a signer's mean hold length, frames per letter (before transitions).
FRAMES_PER_LETTER = (2.0, 8.0)
#: Range of hand sizes (1 = average).
HAND_SIZE = (0.75, 1.3)
#: Spread (hand-local units; palm length ~1) of a signer's own offset of each letter's points.
LETTER_FORM_SIGMA = 0.07


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


def signer_styles(d: Difficulty, seed: int) -> np.random.Generator | None:
    """The stream that gives each participant a :class:`SignerStyle`; None with ``signers`` off.

    Imitates: Kaggle's 94 signers recorded themselves on their phones: signing rate (fluent
    signers ~2 frames per letter at 30 fps, learners ~8), hand size, and each signer's own form of
    each letter differ (ASL has regional and personal variants); the score that matters is on
    signers never seen in training. A styled participant then signs at :func:`hold_rate` with
    :func:`own_letter_forms`.
    """
    return factor_rng((seed,), "signers") if d.signers else None


def draw_style(rng: np.random.Generator, num_characters: int) -> SignerStyle:
    """One signer's style: the faster their rate, the more letters they skip."""
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


def hold_rate(style: SignerStyle | None, speed: float, fewest: int, most: int) -> float:
    """Multiplier of the hold lengths drawn in ``fewest..most``: a styled signer's own rate in
    frames per letter, else the participant's plain ``speed``."""
    if style is None:
        return speed
    return style.frames_per_letter * 2 / (fewest + most)


def own_letter_forms(style: SignerStyle | None, keys: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``keys`` (n + k, 21, 3), whose first n are the letters ``idx`` (n,) of a phrase, with a
    styled signer's own form of each letter added in place (unchanged without a style)."""
    if style is not None:
        keys[: len(idx)] += style.letter_forms[idx]
    return keys
