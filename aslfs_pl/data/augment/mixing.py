"""Batch-level augmentations: a training row made of two sequences of its batch (mixing,
CutMix). They run in the loader's worker on the batch's items before padding."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from aslfs_pl.data.augment.base import BatchAugmentation, BatchLimits, register


def mix_sequences(
    items: list[dict],
    p: float,
    rng_for: Callable[[dict], np.random.Generator],
    max_frames: int,
    max_target_len: int,
    min_frames_per_char: float,
) -> list[dict]:
    """Sequence mixing (``mix_p``) over a batch's items (dicts with ``frames``
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
    """CutMix along time (``cutmix_p``) over a batch's items (dicts as for
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


@dataclass
class MixSettings:
    mix_p: float = 0.0
    """Sequence mixing: a training row becomes itself followed by the batch's next sequence,
    frames and phrase concatenated, when the phrases fit max_target_len (frames beyond
    max_frames are resampled, as for any long sequence). 0: off."""


@register
class Mix(BatchAugmentation):
    name, Settings, probability, order = "mix", MixSettings, "mix_p", 10

    def __call__(self, items, rng_for, limits: BatchLimits) -> list[dict]:
        return mix_sequences(
            items,
            self.p,
            rng_for,
            limits.max_frames,
            limits.max_target_len,
            limits.min_frames_per_char,
        )


@dataclass
class CutMixSettings:
    cutmix_p: float = 0.0
    """CutMix along time (the 1st place's): a training row becomes the head of itself and the
    tail of the batch's next sequence, both cut at the same random fraction of their frames and
    of their phrases. 0: off."""


@register
class CutMix(BatchAugmentation):
    name, Settings, probability, order = "cutmix", CutMixSettings, "cutmix_p", 20

    def __call__(self, items, rng_for, limits: BatchLimits) -> list[dict]:
        return cut_mix(items, self.p, rng_for)
