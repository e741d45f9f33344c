"""Synthetic signers: handedness, body placement, speed, hand size and personal hand shape."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aslfs_pl.data.synthetic import signers
from aslfs_pl.data.synthetic.signers import SignerStyle
from aslfs_pl.vocab import NUM_CHARACTERS


@dataclass(frozen=True)
class Participant:
    """A synthetic signer: handedness, body placement and a personal signing style."""

    participant_id: int
    left_handed: bool
    speed: float
    """Multiplier of the hold lengths (> 1 signs slower)."""
    hand_size: float
    finger_scale: np.ndarray
    """(21,) scale of each point's offset from the wrist (finger lengths)."""
    shape_offset: np.ndarray
    """(21, 3) personal shape offset in hand-local units."""
    roll_bias: float
    body_shift: np.ndarray
    """(2,) x, y shift of the body in image coordinates."""
    body_scale: float
    weight: float
    """Relative number of sequences."""
    style: SignerStyle | None = None
    """Personal signing style (the ``signers`` difficulty factor), else None."""


def make_participants(
    rng: np.random.Generator,
    num: int,
    left_fraction: float,
    style_rng: np.random.Generator | None = None,
) -> list[Participant]:
    """Draw ``num`` participants; ``round(num * left_fraction)`` of them are left-handed.

    At least one signer of each hand exists when ``num >= 2`` and ``0 < left_fraction < 1``.
    With ``style_rng`` (the ``signers`` factor's stream, :func:`~aslfs_pl.data.synthetic.signers.
    signer_styles`) each participant also gets a personal :class:`SignerStyle` (its hand size
    replaces the plain one); the styles come from their own stream so that the plain draws stay.
    """
    n_left = int(round(num * left_fraction))
    if num >= 2 and 0.0 < left_fraction < 1.0:
        n_left = min(max(n_left, 1), num - 1)
    left = np.zeros(num, dtype=bool)
    left[rng.permutation(num)[:n_left]] = True
    ids = np.sort(rng.choice(np.arange(1, 300), size=num, replace=False))
    weights = rng.uniform(0.6, 1.4, num)
    for mask, share in ((left, left_fraction), (~left, 1.0 - left_fraction)):
        if mask.any():  # each hand's group gets its share of the sequences
            weights[mask] *= share / weights[mask].sum()
    out = []
    for i in range(num):
        finger = np.ones(21)
        for f in range(5):
            finger[1 + 4 * f : 5 + 4 * f] = rng.uniform(0.92, 1.08)
        speed = float(rng.uniform(0.8, 1.25))
        hand_size = float(rng.uniform(0.9, 1.1))
        style = None if style_rng is None else signers.draw_style(style_rng, NUM_CHARACTERS)
        out.append(
            Participant(
                participant_id=int(ids[i]),
                left_handed=bool(left[i]),
                speed=speed,
                hand_size=hand_size if style is None else style.hand_size,
                finger_scale=finger,
                shape_offset=rng.normal(0.0, 0.03, (21, 3)),
                roll_bias=float(rng.normal(0.0, 0.06)),
                body_shift=rng.normal(0.0, 0.03, 2),
                body_scale=float(rng.uniform(0.9, 1.1)),
                weight=float(weights[i]),
                style=style,
            )
        )
    return out
