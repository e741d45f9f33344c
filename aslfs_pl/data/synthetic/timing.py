"""When each letter is signed: holds, transitions, lead-in / lead-out, and the frame schedule.

A phrase is signed by holding each character's shape for a random number of frames (the speed
varies per participant, per sequence and per character) with eased transitions between shapes and
a small bounce between repeated letters. The schedule says, for every frame, which two key shapes
it blends and how far; the hand, its position and the mouth all follow it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from aslfs_pl.data.synthetic import difficulty as hard
from aslfs_pl.data.synthetic import signers
from aslfs_pl.data.synthetic.difficulty import Difficulty
from aslfs_pl.data.synthetic.participants import Participant
from aslfs_pl.vocab import NUM_CHARACTERS

#: What ``coarticulation`` and ``skips`` use for a participant without a style of their own.
AVERAGE_STYLE = signers.average_style(NUM_CHARACTERS)


@dataclass(frozen=True)
class Timing:
    """How many frames each part of a phrase of n letters lasts."""

    holds: np.ndarray
    """(n,) frames each letter is held (0: skipped)."""
    transitions: np.ndarray
    """(n-1,) frames from each letter to the next."""
    lead: int
    """Frames of the hand coming in from rest before the first letter."""
    trail: int
    """Frames of the hand going back to rest after the last letter."""
    repeat: np.ndarray
    """(n-1,) bool: the next letter is the same (a double)."""
    bounce: np.ndarray
    """(n-1,) bool: the double is shown by a relax-and-bounce between its holds."""
    skipped: np.ndarray
    """(n,) bool: letters passed without a hold (``skips``)."""


@dataclass(frozen=True)
class Frames:
    """The frame schedule: frame i blends key shape ``a[i]`` into ``b[i]`` by ``alpha[i]``.

    Key shapes are the n letters of the phrase, then the rest pose (key n).
    """

    a: np.ndarray
    """(T,) key blended from."""
    b: np.ndarray
    """(T,) key blended to."""
    alpha: np.ndarray
    """(T, 1) smoothstep weight of ``b``."""
    label: np.ndarray
    """(T,) index into the phrase of the letter held, -1 in transitions."""
    bump: np.ndarray
    """(T,) 0..1 relax-and-bounce of the hand between a double's holds."""

    @property
    def num_frames(self) -> int:
        return len(self.a)

    @property
    def t(self) -> np.ndarray:
        """(T,) float frame times, what the slow wobbles are functions of."""
        return np.arange(self.num_frames, dtype=float)


def split_frames(weights: np.ndarray, total: int, minimum: int = 1) -> np.ndarray:
    """Integers >= ``minimum`` proportional to ``weights`` summing to ``total`` (if possible)."""
    total = max(total, minimum * len(weights))
    raw = minimum + weights / weights.sum() * (total - minimum * len(weights))
    out = np.floor(raw).astype(int)
    rest = total - out.sum()
    if rest > 0:
        out[np.argsort(-(raw - out), kind="stable")[:rest]] += 1
    return out


def plan_timing(
    idx: np.ndarray,
    participant: Participant,
    rng: np.random.Generator,
    difficulty: Difficulty,
    key: Iterable[int],
    *,
    fewest: int,
    most: int,
    target_frames: int | None,
    single_frame: bool,
) -> Timing:
    """How long ``participant`` holds and moves between the letters ``idx`` (n,).

    Args:
        idx: (n,) the phrase's character indices.
        participant: the signer (speed, or their own style's rate).
        rng: the sequence's generator.
        difficulty: the factors on (signers, coarticulation, doubles, skips act here).
        key: the sequence's key in the factors' streams.
        fewest: fewest hold frames per character before the speed scaling.
        most: most hold frames per character before the speed scaling.
        target_frames: if given, stretch holds and transitions to exactly this many frames.
        single_frame: one frame per character, no transitions, no lead-in/out.

    Returns:
        The :class:`Timing`.
    """
    n = len(idx)
    repeat = idx[1:] == idx[:-1]  # (n-1,)
    if single_frame:
        ones, none = np.ones(n, int), np.zeros(n - 1, int)
        return Timing(ones, none, 0, 0, repeat, repeat.copy(), np.zeros(n, dtype=bool))
    d = difficulty
    style = participant.style or AVERAGE_STYLE
    rate = signers.hold_rate(participant.style, participant.speed, fewest, most)
    speed = rate * math.exp(rng.normal(0.0, 0.2))
    base = rng.integers(fewest, most + 1, n)
    holds = np.maximum(1, np.round(base * speed * rng.uniform(0.8, 1.2, n))).astype(int)
    trans = rng.integers(1, 4, n - 1)
    trans[repeat] = np.maximum(trans[repeat], 2)
    lead, trail = int(rng.integers(0, 9)), int(rng.integers(0, 9))
    trans = hard.coarticulated_transitions(d, key, holds, trans)
    bounce = hard.bounced_doubles(d, key, repeat)
    if target_frames is not None:
        both = split_frames(
            np.concatenate([holds, trans]).astype(float), target_frames - lead - trail
        )
        holds, trans = both[:n], np.maximum(both[n:], 1)
    skipped = hard.skips(d, key, idx, style.skip_rate)
    holds[skipped] = 0
    return Timing(holds, trans, lead, trail, repeat, bounce, skipped)


def frame_schedule(timing: Timing) -> Frames:
    """Lay the timing out frame by frame: lead-in, each hold and transition, lead-out."""
    n = len(timing.holds)
    rest = n  # key index of the neutral pose
    seg_a, seg_b, seg_alpha, seg_label, seg_bump = [], [], [], [], []

    def add(a: int, b: int, length: int, label: int, bump: bool) -> None:
        if length <= 0:
            return
        lin = np.arange(1, length + 1) / (length + 1) if a != b else np.zeros(length)
        seg_a.append(np.full(length, a))
        seg_b.append(np.full(length, b))
        seg_alpha.append(lin * lin * (3 - 2 * lin))  # smoothstep
        seg_label.append(np.full(length, label))
        seg_bump.append(np.sin(np.pi * np.arange(1, length + 1) / (length + 1)) * bump)

    add(rest, 0, timing.lead, -1, False)
    for k in range(n):
        add(k, k, int(timing.holds[k]), k, False)
        if k < n - 1:
            # A repeated letter keeps its shape: the hand relaxes and bounces between the holds.
            nxt = k if timing.repeat[k] else k + 1
            add(k, nxt, int(timing.transitions[k]), -1, bool(timing.bounce[k]))
    add(n - 1, rest, timing.trail, -1, False)
    return Frames(
        a=np.concatenate(seg_a),
        b=np.concatenate(seg_b),
        alpha=np.concatenate(seg_alpha)[:, None],
        label=np.concatenate(seg_label),
        bump=np.concatenate(seg_bump),
    )
