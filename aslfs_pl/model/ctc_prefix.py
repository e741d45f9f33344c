"""CTC prefix scores (Watanabe et al. 2017, arXiv:1609.06773, Algorithm 2): the probability that
the frames' CTC alignment starts with a given prefix, for every one-character extension at once.

A prefix g keeps two rows over the F frames: ``r_n[t]``, log P(g emitted by frame t, its last
character at t) and ``r_b[t]``, log P(g emitted by frame t, a blank at t). Extending g by a
character c has the prefix probability

    psi(g + c) = log sum_t exp(phi[t - 1] + log y_t(c)),  phi = r_n (+) r_b  (r_b alone when c
    repeats g's last character; before frame 0 only the empty prefix has probability 1),

a sum over the frames for every class at once; ending g (the end token) scores log P(g) itself,
``r_n[F-1] (+) r_b[F-1]``. The chosen extension's own rows follow from g's as linear recurrences
over the frames, solved here in closed form (cumulative sums and a masked log-sum-exp over a
static (F, F) triangle) rather than by a loop over the frames, so the same functions run in a
PyTorch batch and, unrolled over the decoder's steps, inside the TFLite file with F = max_frames
(frames after the sequence are blank with probability 1).

Precision: the closed form subtracts cumulative sums of per-frame log-probabilities, which are
floored at ``log(1e-30)``: at 384 frames they reach ~-2.7e4, where float32 keeps ~2e-3; the
scores are exact to about that.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from aslfs_pl import vocab

NEG = -1e30  # log of an impossible event: finite, so no inf - inf
LOG_FLOOR = -69.0776  # log(1e-30), the least per-frame log-probability


class Prefix(NamedTuple):
    """A prefix's CTC state, for B rows."""

    r_n: Tensor  # (B, F) log P(the prefix by frame t, its last character at t)
    r_b: Tensor  # (B, F) log P(the prefix by frame t, a blank at t)
    score: Tensor  # (B,) log prefix probability psi of the prefix itself
    last: Tensor  # (B,) float: its last character, -1 for the empty prefix


def log_probs(probs: Tensor) -> Tensor:
    """(B, F, V) per-frame probabilities (blank after the sequence) -> floored log-probabilities."""
    return torch.log(torch.clamp(probs, min=1e-30))


def logaddexp(a: Tensor, b: Tensor) -> Tensor:
    m = torch.maximum(a, b)
    return m + torch.log(torch.exp(a - m) + torch.exp(b - m))


def logsumexp(x: Tensor, dim: int) -> Tensor:
    m = torch.amax(x, dim, keepdim=True)
    return (m + torch.log(torch.exp(x - m).sum(dim, keepdim=True))).squeeze(dim)


def triangles(index: Tensor) -> tuple[Tensor, Tensor]:
    """What :func:`extend` reads, from the F frame indices ``index`` (0..F-1, float): ``upto``
    (F, F), 1 where s <= t (a row vector times it is a cumulative sum), and ``later`` (F, F),
    :data:`NEG` where s > t. Made from the indices at run time (in the file: no F x F constant
    stored; the impossible entries by ``where``, as an fp16 file stores -1e30 as -inf)."""
    half = index.new_full((1,), 0.5)
    upto = (index.unsqueeze(1) < (index + half).unsqueeze(0)).to(index.dtype)  # [s, t]
    later = torch.where(upto.t() > half, index.new_zeros(1), index.new_full((1,), NEG))
    return upto, later


def start(logp: Tensor, upto: Tensor) -> Prefix:
    """The empty prefix of ``logp`` (B, F, V) log-probabilities: blanks only."""
    b, f, _ = logp.shape
    r_b = logp[..., vocab.PAD] @ upto  # (B, F): blanks from frame 0 to t
    zeros = torch.zeros(b, device=logp.device)
    return Prefix(torch.full((b, f), NEG, device=logp.device), r_b, zeros, zeros - 1.0)


def _before(prefix: Prefix, rows: Tensor) -> Tensor:
    """``rows`` (B, F) shifted one frame later: the value before frame t; before frame 0, 0
    for the empty prefix (probability 1) and impossible for any other."""
    first = torch.where(prefix.last.unsqueeze(1) < -0.5, 0.0, NEG)  # (B, 1)
    return torch.cat([first, rows[:, :-1]], 1)


def scores(prefix: Prefix, logp: Tensor, classes: Tensor) -> Tensor:
    """psi of every one-token extension of ``prefix``: (B, V); the end token scores the prefix's
    whole probability, the other non-characters :data:`NEG`. ``classes``: 0..V-1 as float."""
    phi = _before(prefix, logaddexp(prefix.r_n, prefix.r_b))  # (B, F)
    blank_only = _before(prefix, prefix.r_b)
    psi = logsumexp(phi.unsqueeze(2) + logp, 1)  # (B, V)
    psi_repeat = logsumexp(blank_only.unsqueeze(2) + logp, 1)
    repeat = ((classes - prefix.last.unsqueeze(1)) ** 2 < 0.25).to(torch.float32)
    psi = psi * (1.0 - repeat) + psi_repeat * repeat
    whole = logaddexp(prefix.r_n[:, -1:], prefix.r_b[:, -1:])  # (B, 1)
    is_end = ((classes - vocab.EOS) ** 2 < 0.25).unsqueeze(0)
    chars = (classes < vocab.NUM_CHARACTERS - 0.5).unsqueeze(0)
    return torch.where(is_end, whole, torch.where(chars, psi, torch.full_like(psi, NEG)))


def extend(
    prefix: Prefix,
    logp: Tensor,
    token: Tensor,
    psi: Tensor,
    classes: Tensor,
    triangle: tuple[Tensor, Tensor],
) -> Prefix:
    """``prefix`` extended by the character ``token`` (B,) float; ``psi``: :func:`scores` of the
    prefix, ``triangle``: :func:`triangles`. The rows, in closed form:

        r_n[t] = log sum_{s <= t} exp(phi_c[s - 1] + log y_s..t(c))
        r_b[t] = log sum_{1 <= s <= t} exp(r_n[s - 1] + log y_s..t(blank))

    (``log y_s..t`` a sum of per-frame log-probabilities: a difference of cumulative sums)."""
    upto, later = triangle
    pick = ((classes - token.unsqueeze(1)) ** 2 < 0.25).to(torch.float32)  # (B, V)
    own = (logp @ pick.unsqueeze(2))[..., 0]  # (B, F) log y_t(c)
    repeat = ((token - prefix.last) ** 2 < 0.25).unsqueeze(1)
    phi = torch.where(
        repeat,
        _before(prefix, prefix.r_b),
        _before(prefix, logaddexp(prefix.r_n, prefix.r_b)),
    )
    total = own @ upto  # (B, F) cumulative log y(c) through t
    r_n = total + logsumexp((phi + own - total).unsqueeze(1) + later, 2)
    blank = logp[..., vocab.PAD]
    blanks = blank @ upto
    r_n_before = torch.cat([torch.full_like(r_n[:, :1], NEG), r_n[:, :-1]], 1)
    r_b = blanks + logsumexp((r_n_before + blank - blanks).unsqueeze(1) + later, 2)
    return Prefix(r_n, r_b, (psi * pick).sum(1), token)


def keep(ended: Tensor, old: Prefix, new: Prefix) -> Prefix:
    """Rows where ``ended`` (B,) bool keep ``old``."""
    rows = ended.unsqueeze(1)
    return Prefix(
        torch.where(rows, old.r_n, new.r_n),
        torch.where(rows, old.r_b, new.r_b),
        torch.where(ended, old.score, new.score),
        torch.where(ended, old.last, new.last),
    )
