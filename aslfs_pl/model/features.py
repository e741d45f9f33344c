"""Pure tensor functions from raw landmark frames to model features.

These run twice: in training (inside the model's forward, on the accelerator) and inside the
exported TFLite graph. They are written with ops that lower to TFLite (``where``/``isnan`` instead
of ``nan_to_num`` or ``nanmean``) and take no shape-derived constants, so the same code serves both.

Shapes: ``B`` batch, ``T`` frames, ``P`` landmarks, ``A`` axes (2 for x, y), ``C = A * P`` columns
(axis-major, as Kaggle stores them and as ``LandmarkSet.selected_columns`` orders them).

Policy for values (training and export alike): a coordinate that is not finite or lies beyond
:data:`MAX_COORDINATE` in magnitude is missing, like a landmark MediaPipe did not see
(:func:`as_missing_if_absurd`).

Policy for the frame axis (training and export alike):
- a frame whose selected landmarks are all NaN carries no information and is masked like padding
  (this includes Kaggle's frames where MediaPipe saw nothing, and the NaN rows used as padding);
- a sequence longer than ``max_frames`` is resampled to ``max_frames`` by taking evenly spaced
  frames (nearest index), so every character keeps some frames; shorter ones are NaN-padded.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from aslfs_pl.export_ops import const

EPS_SCALE = 1e-3  # floor on a spread, in image units (frames hold ~0.1-0.3; the dense stem too)
MAX_COORDINATE = 100.0  # MediaPipe's normalised coordinates stay within a few units


def as_missing_if_absurd(x: Tensor) -> Tensor:
    """Values that are not finite or beyond ``MAX_COORDINATE`` in magnitude -> NaN.

    Both comparisons are false for NaN, inf and absurd values alike. Written with the strict
    comparisons of two tensors that lower to TFLite with a symbolic frame count (``abs``,
    ``isfinite``, ``<=`` and ``>=`` do not).
    """
    within = (x < x.new_full((1,), MAX_COORDINATE)) & (x > x.new_full((1,), -MAX_COORDINATE))
    return torch.where(within, x, x.new_full((1,), float("nan")))


def to_points(x: Tensor, num_axes: int) -> Tensor:
    """(..., T, C) axis-major columns -> (..., T, P, A)."""
    *lead, t, c = x.shape
    return x.reshape(*lead, t, num_axes, c // num_axes).transpose(-1, -2)


def frame_mask(x: Tensor) -> Tensor:
    """(..., T, C) -> (..., T) bool: True where the frame has at least one non-NaN value."""
    return (~torch.isnan(x)).any(dim=-1)


def zero_nan(x: Tensor) -> Tensor:
    """NaN -> 0 (``nan_to_num`` does not lower to TFLite; ``where`` does).

    The zero is a one-element tensor broadcast by ``where``: ``zeros_like`` of a tensor whose
    frame count is symbolic fails to lower.
    """
    return torch.where(torch.isnan(x), x.new_zeros(1), x)


def normalise_frames(points: Tensor) -> Tensor:
    """Centre each frame on the mean of its visible points and divide by their spread.

    Args:
        points: (..., T, P, A) with NaN for unseen landmarks.

    Returns:
        Same shape; NaN stays NaN. One scale per frame (shared by the axes) keeps the aspect.
    """
    valid = ~torch.isnan(points)  # (..., T, P, A)
    vf = valid.to(points.dtype)
    cnt = vf.sum(dim=-2, keepdim=True).clamp(min=1.0)  # (..., T, 1, A)
    mean = zero_nan(points).sum(dim=-2, keepdim=True) / cnt
    centred = points - mean
    sq = zero_nan(centred * centred)
    var = sq.sum(dim=(-2, -1), keepdim=True) / vf.sum(dim=(-2, -1), keepdim=True).clamp(min=1.0)
    scale = torch.sqrt(var).clamp(min=EPS_SCALE)  # (..., T, 1, 1)
    return centred / scale


def shift_frames(x: Tensor, k: int) -> Tensor:
    """(..., T, F) delayed by k frames along T; the first k frames become NaN."""
    pad = torch.full_like(x[..., :k, :], float("nan"))
    return torch.cat([pad, x[..., : x.shape[-2] - k, :]], dim=-2) if k else x


def landmark_features(x: Tensor, num_axes: int) -> tuple[Tensor, Tensor]:
    """Raw frames -> model features and frame mask.

    Features per frame: the normalised coordinates, then their displacement from 1 and from 2
    frames before (``x_t - x_{t-1}``, ``x_t - x_{t-2}``; backward differences keep the encoder's
    causality). A coordinate or displacement involving a NaN is 0; the mask tells which frames
    are real.

    Args:
        x: (..., T, C) raw landmark columns, NaN where unseen or padded.
        num_axes: axes per landmark (C = num_axes * P).

    Returns:
        features (..., T, 3 * C) float, mask (..., T) bool.
    """
    x = as_missing_if_absurd(x)
    mask = frame_mask(x)
    pts = normalise_frames(to_points(x, num_axes))  # (..., T, P, A)
    flat = pts.flatten(-2)  # (..., T, P*A)
    d1 = flat - shift_frames(flat, 1)
    d2 = flat - shift_frames(flat, 2)
    feats = zero_nan(torch.cat([flat, d1, d2], dim=-1))
    return feats, mask


def frame_features(x: Tensor, num_axes: int) -> tuple[Tensor, Tensor]:
    """The deployment form of :func:`landmark_features` for one sequence: (n, C) raw rows ->
    features (n, 3C), valid (n, 1) float; ops that lower to TFLite with a symbolic n.

    Same values, but each of the three blocks is axis-major (x0, x1, ..., y0, ...) rather than
    point-major, which needs no reshape of a frame-sized tensor; the embedding's export form
    reorders its dense layer's columns to match.
    """
    x = as_missing_if_absurd(x)
    c = x.shape[1]
    p = c // num_axes
    seen = (~torch.isnan(x)).to(torch.float32)  # (n, C)
    valid = (seen.mean(1, keepdim=True) > const(0.0)).to(torch.float32)  # (n, 1)
    zero = zero_nan(x)
    centred = []
    for i in range(num_axes):  # per-axis mean of the visible points: mean(x) / mean(seen)
        cols = slice(i * p, (i + 1) * p)
        count = torch.maximum(seen[:, cols].mean(1, keepdim=True), const(1.0 / p))
        centred.append(x[:, cols] - zero[:, cols].mean(1, keepdim=True) / count)
    centred = torch.cat(centred, 1)  # (n, C), NaN where unseen
    var = zero_nan(centred * centred).mean(1, keepdim=True) / torch.maximum(
        seen.mean(1, keepdim=True), const(1.0 / c)
    )
    flat = centred * torch.rsqrt(torch.maximum(var, const(EPS_SCALE**2)))
    n = flat.shape[0]
    nan = torch.full((2, c), float("nan"))
    d1 = flat - torch.cat([nan[:1], flat], 0)[:n]
    d2 = flat - torch.cat([nan, flat], 0)[:n]
    return zero_nan(torch.cat([flat, d1, d2], 1)), valid


def resample_indices(num_frames: int, max_frames: int) -> np.ndarray:
    """Evenly spaced frame indices taking a sequence of ``num_frames`` down to ``max_frames``."""
    return (np.arange(max_frames) * num_frames) // max_frames


def fit_length(frames: np.ndarray, max_frames: int) -> np.ndarray:
    """(T, C) -> (max_frames, C): resample when longer, NaN-pad when shorter (see module doc)."""
    t = frames.shape[0]
    if t > max_frames:
        return frames[resample_indices(t, max_frames)]
    out = np.full((max_frames, frames.shape[1]), np.nan, dtype=np.float32)
    out[:t] = frames
    return out
