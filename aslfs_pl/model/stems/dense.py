"""The dense stem (the 2nd place's): each axis normalised over the whole sequence, one dense layer.

(B, T, C) raw columns -> per axis, the mean and standard deviation of every seen value of the
sequence (all its frames and points), the coordinates centred and scaled by them, unseen ones 0
-> one dense layer without bias -> (B, T, D); the frame mask as every stem's (frames with a seen
value). No positions: the 2nd place's encoder has none (its convolutions carry the order).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from aslfs_pl.export_ops import ExportForm, const, linear
from aslfs_pl.model.features import (
    EPS_SCALE,
    as_missing_if_absurd,
    frame_mask,
    to_points,
    zero_nan,
)
from aslfs_pl.model.stems.base import Stem, register

if TYPE_CHECKING:
    from aslfs_pl.model.config import ModelConfig


@register
class DenseStem(Stem):
    """See the module doc."""

    name = "dense"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_axes = config.num_axes
        self.dense = nn.Linear(config.num_columns, config.dim, bias=False)

    def forward(self, landmarks: Tensor) -> tuple[Tensor, Tensor]:
        x = as_missing_if_absurd(landmarks)
        mask = frame_mask(x)
        pts = to_points(x, self.num_axes)  # (B, T, P, A)
        seen = (~torch.isnan(pts)).to(pts.dtype)
        count = seen.sum(dim=(1, 2), keepdim=True).clamp(min=1.0)  # (B, 1, 1, A)
        mean = zero_nan(pts).sum(dim=(1, 2), keepdim=True) / count
        centred = pts - mean
        var = zero_nan(centred * centred).sum(dim=(1, 2), keepdim=True) / count
        scaled = centred / torch.sqrt(var).clamp(min=EPS_SCALE)
        return self.dense(zero_nan(scaled).flatten(-2)), mask

    def export_form(self) -> DenseStemExport:
        return DenseStemExport(self)


class DenseStemExport(ExportForm):
    """:class:`DenseStem` on (n, C) raw rows (axis-major, as Kaggle's columns): the dense
    layer's columns reordered to match (training's features are point-major)."""

    def __init__(self, stem: DenseStem):
        super().__init__()
        a, c = stem.num_axes, stem.dense.in_features
        self.num_axes = a
        order = [i + a * p for i in range(a) for p in range(c // a)]
        self.put_weights("dense", stem.dense.weight[:, order], torch.zeros(stem.dense.out_features))
        self.covers(stem.dense)
        self.put("zero", const(0.0))
        self.put("tiny", const(1e-9))
        self.put("eps2", const(EPS_SCALE**2))

    def forward(self, rows: Tensor, j: Tensor) -> tuple[Tensor, Tensor]:
        x = as_missing_if_absurd(rows)
        p = x.shape[1] // self.num_axes
        seen = (~torch.isnan(x)).to(torch.float32)  # (n, C)
        valid = (seen.mean(1, keepdim=True) > self.zero).to(torch.float32)  # (n, 1)
        zero = zero_nan(x)
        axes = []
        for i in range(self.num_axes):  # means over every row and point: mean(x) / mean(seen)
            cols = slice(i * p, (i + 1) * p)
            share = torch.maximum(
                seen[:, cols].mean(1, keepdim=True).mean(0, keepdim=True), self.tiny
            )
            mean = zero[:, cols].mean(1, keepdim=True).mean(0, keepdim=True) / share
            centred = x[:, cols] - mean
            square = zero_nan(centred * centred).mean(1, keepdim=True).mean(0, keepdim=True)
            axes.append(centred * torch.rsqrt(torch.maximum(square / share, self.eps2)))
        return linear(zero_nan(torch.cat(axes, 1)), self.weights("dense")), valid
