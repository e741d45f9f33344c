"""The conv + ECA stem (the seed's embedding): features, dense, batch norm, causal conv blocks.

(B, T, C) raw columns -> per-frame features (B, T, 3C) (:func:`~aslfs_pl.model.features.
landmark_features`: normalised coordinates, their 1- and 2-frame displacements, NaN -> 0) and the
frame mask -> dense -> batch norm over valid frames -> ``blocks`` x (expand, causal depthwise
conv, batch norm, efficient channel attention, project, residual) -> + sinusoidal positions
(B, T, D). Each layer's deployment twin follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aslfs_pl.export_ops import ExportForm, bn_scale_shift, const, export_form, linear, sigmoid
from aslfs_pl.model.features import frame_features, landmark_features
from aslfs_pl.model.layers import MaskedBatchNorm, sinusoidal_positions
from aslfs_pl.model.regularisation import Dropout
from aslfs_pl.model.stems.base import Stem, register

if TYPE_CHECKING:
    from aslfs_pl.model.config import ModelConfig


@dataclass
class ConvECASettings:
    """The conv + ECA stem's settings (``model.stem_conf``)."""

    blocks: int = 3
    """Causal conv + ECA blocks."""
    kernel: int = 17
    """Depthwise conv kernel, frames (causal: a frame sees this many, itself included)."""
    expand: int = 2
    """Channel expansion inside a conv block."""

    def __post_init__(self) -> None:
        for name in ("kernel", "expand"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.stem_conf.{name} {getattr(self, name)} must be >= 1")
        if self.blocks < 0:
            raise ValueError(f"model.stem_conf.blocks {self.blocks} must be >= 0")


@register
class ConvECAStem(Stem):
    """Features -> dense -> batch norm -> conv blocks -> + positions: (B, T, C) raw frames ->
    (B, T, D), frame mask (B, T). No positions when the encoder rotates its queries and keys
    (``model.rotary``)."""

    name = "conv_eca"
    Settings = ConvECASettings
    legacy = {"conv_blocks": "blocks", "conv_kernel": "kernel", "conv_expand": "expand"}

    def __init__(self, config: ModelConfig):
        super().__init__()
        s, dim = config.stem_settings, config.dim
        self.num_axes = config.num_axes
        self.absolute_positions = not config.rotary
        self.dense = nn.Linear(3 * config.num_columns, dim, bias=False)
        self.norm = MaskedBatchNorm(dim, momentum=0.05)
        self.convs = nn.ModuleList(
            ConvBlock(dim, s.kernel, s.expand, config.dropout) for _ in range(s.blocks)
        )
        positions = sinusoidal_positions(config.max_frames, dim)
        self.register_buffer("positions", positions, persistent=False)

    def forward(self, landmarks: Tensor) -> tuple[Tensor, Tensor]:
        feats, mask = landmark_features(landmarks, self.num_axes)  # (B, T, 3C), (B, T)
        x = self.norm(self.dense(feats), mask)  # statistics over valid frames only
        for conv in self.convs:
            x = conv(x, mask)
        return (x + self.positions[: x.shape[1]] if self.absolute_positions else x), mask

    def export_form(self) -> ConvECAStemExport:
        return ConvECAStemExport(self)


class ConvECAStemExport(ExportForm):
    """:class:`ConvECAStem` on (n, C) raw rows: the features in the deployment order (axis-major
    per block, see :func:`~aslfs_pl.model.features.frame_features`), so the dense layer's
    columns are reordered to match and the batch norm is folded into it."""

    def __init__(self, stem: ConvECAStem):
        super().__init__()
        a, c = stem.num_axes, stem.dense.in_features // 3
        self.num_axes = a
        # training features are point-major (x0, y0, x1, ...) in each of the 3 blocks
        order = [b * c + i + a * p for b in range(3) for i in range(a) for p in range(c // a)]
        scale, shift = bn_scale_shift(stem.norm)
        self.put_weights("dense", stem.dense.weight[:, order] * scale[:, None], shift)
        self.covers(stem.positions, stem.dense, stem.norm)
        self.convs = nn.ModuleList(export_form(block) for block in stem.convs)
        self.absolute_positions = stem.absolute_positions
        self.put("positions", stem.positions)
        self.put("last_position", const(stem.positions.shape[0] - 1.0))

    def forward(self, rows: Tensor, j: Tensor) -> tuple[Tensor, Tensor]:
        """``rows`` (n, C) raw, ``j`` (n,) frame indices as float -> (n, D), valid (n, 1)."""
        feats, valid = frame_features(rows, self.num_axes)  # (n, 3C), (n, 1)
        x = linear(feats, self.weights("dense"))  # (n, D)
        for conv in self.convs:
            x = conv(x, valid)
        if not self.absolute_positions:
            return x, valid
        pos = torch.minimum(j, self.last_position).to(torch.int32)  # rows >= F are invalid
        return x + F.embedding(pos, self.positions), valid


class ECA(nn.Module):
    """Efficient channel attention (Wang et al. 2020, arXiv:1910.03151) over valid frames.

    Channel weights come from a 1-D conv across the channels of the masked time-average, so
    padding and NaN frames never change them.
    """

    def __init__(self, kernel: int = 5):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, C)
        w = torch.sigmoid(self.conv(pooled.unsqueeze(1))).squeeze(1)  # (B, C)
        return x * w.unsqueeze(1)

    def export_form(self) -> ECAExport:
        return ECAExport(self)


class ECAExport(ExportForm):
    """:class:`ECA` on (n, C) frames with ``valid`` (n, 1) float; the conv across the channels
    as shifted slices times its (constant) taps."""

    def __init__(self, eca: ECA):
        super().__init__()
        self.taps = [float(v) for v in eca.conv.weight[0, 0]]
        self.covers(eca.conv)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        # mean over valid frames: mean(x * m) / mean(m) = sum(x * m) / sum(m)
        pooled = (x * valid).mean(0, keepdim=True) / torch.maximum(
            valid.mean(0, keepdim=True), const(1e-9)
        )  # (1, C)
        k, c = len(self.taps), pooled.shape[1]
        zeros = torch.full((1, k // 2), 0.0)
        padded = torch.cat([zeros, pooled, zeros], 1)  # (1, C + k - 1): the conv's zero padding
        gate = padded[:, :c] * self.taps[0]
        for t in range(1, k):
            gate = gate + padded[:, t : t + c] * self.taps[t]
        return x * sigmoid(gate)


class CausalDepthwiseConv(nn.Module):
    """Depthwise 1-D conv over time where frame t sees frames t-k+1..t only."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(channels, channels, kernel, groups=channels)

    def forward(self, x: Tensor) -> Tensor:
        y = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))  # (B, C, T + k - 1)
        return self.conv(y).transpose(1, 2)  # (B, T, C)


class ConvBlock(nn.Module):
    """Expand -> causal depthwise conv -> batch norm -> ECA -> project, with a residual."""

    def __init__(self, dim: int, kernel: int = 17, expand: int = 2, dropout: float = 0.0):
        super().__init__()
        hidden = dim * expand
        self.expand = nn.Linear(dim, hidden)
        self.dwconv = CausalDepthwiseConv(hidden, kernel)
        self.norm = MaskedBatchNorm(hidden, momentum=0.05)
        self.eca = ECA()
        self.project = nn.Linear(hidden, dim)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        y = F.silu(self.expand(x))
        y = self.dwconv(y)
        y = self.norm(y, mask)
        y = self.eca(y, mask)
        return x + self.dropout(self.project(y))

    def export_form(self) -> ConvBlockExport:
        return ConvBlockExport(self)


class ConvBlockExport(ExportForm):
    """:class:`ConvBlock` on (n, D) frames with ``valid`` (n, 1) float; the batch norm folded
    into the depthwise conv."""

    def __init__(self, block: ConvBlock):
        super().__init__()
        self.put_linear("expand", block.expand)
        self.put_linear("project", block.project)
        scale, shift = bn_scale_shift(block.norm)
        conv = block.dwconv.conv
        self.put("conv_w", conv.weight * scale[:, None, None])
        self.put("conv_b", conv.bias * scale + shift)
        self.covers(conv, block.norm)
        self.eca = block.eca.export_form()

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        y = linear(x, self.weights("expand"))
        y = y * sigmoid(y)  # SiLU
        w = self.conv_w  # (H, 1, k): causal depthwise conv, zero history before frame 0
        padded = torch.cat([torch.full((w.shape[2] - 1, y.shape[1]), 0.0), y], 0)
        y = F.conv1d(padded.t()[None], w, self.conv_b, groups=w.shape[0])[0].t()  # (n, H)
        return x + linear(self.eca(y, valid), self.weights("project"))
