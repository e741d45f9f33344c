"""The conv / transformer encoder (the 2nd place's): conv blocks and transformer blocks in a
pattern, one conv block of stride 2 that halves the frames for the rest of the encoder.

``encoder_conf.pattern`` spells the blocks, one letter each: ``C`` a conv block (batch norm,
expand x ``expand`` with SiLU, centred depthwise conv of ``kernel`` frames over the valid frames,
batch norm, ECA, project, residual), ``S`` the same conv block with stride 2 and no residual
(frame i of its output is centred on input frame 2i; the frame mask keeps every other frame),
``T`` a pre-norm transformer block (self-attention over the valid frames, MLP x ``mlp_ratio``).
Their default is the 2nd place's 17 blocks: ``CCCTCCCTSCCCTCCCT``. There are no positional
encodings: the convolutions carry the order.

(B, T, D) embedded frames -> (B, T', D) encoded frames, T' = ceil(T / 2) per ``S``;
:meth:`ConvTransformer.output_mask` gives their mask. The export form returns the frames, their
mask and their indices (:mod:`aslfs_pl.model.encoders.base`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aslfs_pl.export_ops import (
    ExportForm,
    bn_scale_shift,
    const,
    export_form,
    linear,
    normalise,
    sigmoid,
)
from aslfs_pl.model.encoders.base import Encoder, register
from aslfs_pl.model.layers import MLP, Attention, MaskedBatchNorm, attention_bias, global_mask
from aslfs_pl.model.regularisation import DropPath
from aslfs_pl.model.stems.conv_eca import ECA

if TYPE_CHECKING:
    from aslfs_pl.model.config import ModelConfig


@dataclass
class ConvTransformerSettings:
    """The conv / transformer encoder's settings (``model.encoder_conf``)."""

    pattern: str = "CCCTCCCTSCCCTCCCT"
    """The blocks, one letter each: C conv, S conv of stride 2, T transformer (its length is
    ``model.encoder_blocks``)."""
    kernel: int = 17
    """The conv blocks' depthwise kernel, frames (odd: centred)."""
    expand: int = 4
    """The conv blocks' expansion."""

    def __post_init__(self) -> None:
        if not self.pattern or set(self.pattern) - set("CST"):
            raise ValueError(
                f"model.encoder_conf.pattern {self.pattern!r}: letters C, S and T only"
            )
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"model.encoder_conf.kernel {self.kernel} must be odd (centred)")
        if self.expand < 1:
            raise ValueError(f"model.encoder_conf.expand {self.expand} must be >= 1")


class ConvBlock(nn.Module):
    """Batch norm, expand + SiLU, centred depthwise conv (stride 1 or 2), batch norm, ECA,
    project; a residual at stride 1 (see the module doc)."""

    def __init__(self, dim: int, kernel: int, expand: int, stride: int, drop_path: float):
        super().__init__()
        hidden = dim * expand
        self.stride, self.kernel = stride, kernel
        self.pre_norm = MaskedBatchNorm(dim, momentum=0.05)
        self.expand = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv1d(
            hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False
        )
        self.norm = MaskedBatchNorm(hidden, momentum=0.05)
        self.eca = ECA()
        self.project = nn.Linear(hidden, dim)
        self.drop = DropPath(drop_path if stride == 1 else 0.0)  # theirs: none at stride 2

    def forward(self, x: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        mask = valid.unsqueeze(-1).to(x.dtype)
        y = F.silu(self.expand(self.pre_norm(x, valid))) * mask  # invalid frames: zeros
        y = self.dwconv(y.transpose(1, 2)).transpose(1, 2)
        out_valid = valid[:, :: self.stride]
        y = self.eca(self.norm(y, out_valid), out_valid)
        y = self.drop(self.project(y))
        return (x + y if self.stride == 1 else y), out_valid

    def export_form(self) -> ConvBlockExport:
        return ConvBlockExport(self)


class ConvBlockExport(ExportForm):
    """:class:`ConvBlock` on (n, D) frames: the first batch norm folded into the expansion,
    the second into the depthwise conv; zero rows around the frames for the conv's padding.
    Stride 2: (n, D) -> (ceil((n + 2) / 2), D) rows, the last ones invalid frames (the extra
    rows keep the count provably above 1 for the exporter)."""

    def __init__(self, block: ConvBlock):
        super().__init__()
        self.stride, self.kernel = block.stride, block.kernel
        scale, shift = bn_scale_shift(block.pre_norm)
        w, b = block.expand.weight, block.expand.bias
        self.put_weights("expand", w * scale, b + w @ shift)
        scale, shift = bn_scale_shift(block.norm)
        self.put("conv_w", block.dwconv.weight * scale[:, None, None])
        self.put("conv_b", shift)
        self.put_linear("project", block.project)
        self.eca = block.eca.export_form()
        self.covers(block.pre_norm, block.expand, block.dwconv, block.norm)
        self.put("pick", torch.ones(1, 1, 1))
        self.put("one", const(1.0))
        self.put("two", const(2.0))
        self.put("one_half", const(0.5))

    def forward(self, x: Tensor, valid: Tensor, j: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y = linear(x, self.weights("expand"))
        y = y * sigmoid(y) * valid
        h, k = y.shape[1], self.kernel
        extra = 2 if self.stride > 1 else 0  # invalid rows after the frames (see the doc)
        before = torch.full((k // 2, h), 0.0)
        after = torch.full((k // 2 + extra, h), 0.0)
        padded = torch.cat([before, y, after], 0)
        y = F.conv1d(padded.t()[None], self.conv_w, self.conv_b, self.stride, groups=h)[0].t()
        if self.stride > 1:  # every other frame, and two more (invalid) rows
            valid = self._every_other(torch.cat([valid, torch.full((extra, 1), 0.0)], 0))
            rows = torch.cat([j, j[-1:] + self.one, j[-1:] + self.two], 0).unsqueeze(1)
            j = self._every_other(rows)[:, 0] * self.one_half
        y = linear(self.eca(y, valid), self.weights("project"))
        return (x + y if self.stride == 1 else y), valid, j

    def _every_other(self, rows: Tensor) -> Tensor:
        """Rows 0, 2, 4, ... of (r, 1) ``rows``, as the strided conv reads them: a conv of
        stride 2 with the one-hot kernel of its centre."""
        return F.conv1d(rows.t()[None], self.pick, None, self.stride)[0].t()


class TransformerBlock(nn.Module):
    """Pre-norm self-attention over the valid frames (dropout on its weights) and an MLP, each
    with drop path."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float, drop_path: float):
        super().__init__()
        self.attn_norm, self.attn = nn.LayerNorm(dim), Attention(dim, heads, dropout)
        self.mlp_norm, self.mlp = nn.LayerNorm(dim), MLP(dim, mlp_ratio)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        h = self.attn_norm(x)
        x = x + self.drop_path(self.attn(h, h, global_mask(valid), None))
        return x + self.drop_path(self.mlp(self.mlp_norm(x))), valid

    def export_form(self) -> TransformerBlockExport:
        return TransformerBlockExport(self)


class TransformerBlockExport(ExportForm):
    """:class:`TransformerBlock` on (n, D) frames; the score bias from the valid frames and
    each frame itself."""

    def __init__(self, block: TransformerBlock):
        super().__init__()
        self.attn = export_form(block.attn, block.attn_norm, heads_apart=True)
        self.mlp = export_form(block.mlp, block.mlp_norm)
        self.put("half_step", const(0.5))

    def forward(self, x: Tensor, valid: Tensor, j: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        offset = j.unsqueeze(1) - j.unsqueeze(0)
        is_self = (offset * offset < self.half_step).to(torch.float32)
        bias = attention_bias(torch.maximum(valid.t(), is_self))
        x = x + self.attn.over_frames(self.attn.normalise(x), bias)
        return x + self.mlp(x), valid, j


@register
class ConvTransformer(Encoder):
    """See the module doc."""

    name = "conv_transformer"
    Settings = ConvTransformerSettings

    @classmethod
    def check(cls, config: ModelConfig) -> None:
        pattern = config.encoder_settings.pattern
        if len(pattern) != config.encoder_blocks:
            raise ValueError(
                f"model.encoder_conf.pattern {pattern!r} spells {len(pattern)} blocks, "
                f"model.encoder_blocks is {config.encoder_blocks}"
            )

    def __init__(self, config: ModelConfig):
        super().__init__()
        c, s = config, config.encoder_settings
        self.blocks = nn.ModuleList(
            TransformerBlock(c.dim, c.heads, c.mlp_ratio, c.dropout, c.drop_path)
            if letter == "T"
            else ConvBlock(c.dim, s.kernel, s.expand, 2 if letter == "S" else 1, c.drop_path)
            for letter in s.pattern
        )  # drop path: the same rate in every block (theirs)
        self.strides = s.pattern.count("S")
        self.norm = nn.LayerNorm(c.dim)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        for block in self.blocks:
            x, valid = block(x, valid)
        return self.norm(x)

    def output_mask(self, valid: Tensor) -> Tensor:
        return valid[:, :: 2**self.strides]

    def encoded_rows(self, frames: int) -> int:
        rows = frames + 1  # the export's n = T + 1 rows, T <= max_frames (later ones invalid)
        for _ in range(self.strides):  # each stride: floor((n + 1) / 2) + 1 rows
            rows = (rows + 1) // 2 + 1
        return rows

    def export_form(self) -> ConvTransformerExport:
        return ConvTransformerExport(self)


class ConvTransformerExport(ExportForm):
    """:class:`ConvTransformer` on (n, D) frames -> the encoded frames normalised without the
    final norm's affine, their mask and their indices."""

    def __init__(self, enc: ConvTransformer):
        super().__init__()
        self.blocks = nn.ModuleList(export_form(block) for block in enc.blocks)
        self.put("eps", const(enc.norm.eps))

    def forward(self, x: Tensor, valid: Tensor, j: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        for block in self.blocks:
            x, valid, j = block(x, valid, j)
        return normalise(x, self.eps), valid, j
