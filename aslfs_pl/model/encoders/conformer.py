"""Conformer and Squeezeformer encoders: self-attention, MLPs and a conv module in every block.

Conformer (Gulati et al. 2020, arXiv:2005.08100): half-step MLP, self-attention, conv module,
half-step MLP, layer norm. Squeezeformer (Kim et al. 2022, arXiv:2206.00888): self-attention,
MLP, conv module, MLP, and a temporal U-Net: the middle blocks run on frames merged ``f`` at a
time (a strided depthwise conv), and before the last block the merged frames are repeated back
to the full rate and added to the frames from before the merge. Both pre-norm here, like the
rest of the network. This module holds the blocks and the Conformer family;
:mod:`aslfs_pl.model.encoders.squeezeformer` registers the Squeezeformer family on them.

(B, T, D) embedded frames -> (B, T, D). Each layer's deployment twin follows it and runs on
(n, D) frames of one sequence, n symbolic (see :mod:`aslfs_pl.export_ops`).
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
    fold_norm,
    linear,
    normalise,
    sigmoid,
)
from aslfs_pl.model.encoders.base import Encoder, register
from aslfs_pl.model.layers import (
    MLP,
    Affine,
    Attention,
    MaskedBatchNorm,
    RotaryExport,
    Rotation,
    attention_bias,
    global_mask,
    rotary_tables,
)
from aslfs_pl.model.regularisation import Dropout, DropPath

if TYPE_CHECKING:
    from aslfs_pl.model.config import ModelConfig


@dataclass
class ConformerSettings:
    """The Conformer's settings (``model.encoder_conf``)."""

    kernel: int = 31
    """The conv module's depthwise kernel, frames (odd: centred on the frame)."""
    post_norm: bool = False
    """Post-norm blocks (the 1st place's Squeezeformer): each module reads its input through a
    learnable per-channel scale and bias (initially 1 and 0), and a layer norm follows each
    residual sum. False: pre-norm, each module reads a layer norm of its input."""

    def __post_init__(self) -> None:
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"model.encoder_conf.kernel {self.kernel} must be odd (centred)")


class ConvModule(nn.Module):
    """Pointwise conv + GLU, centred depthwise conv over the valid frames (invalid ones are
    zeros to their neighbours), batch norm over valid frames, SiLU, pointwise conv."""

    def __init__(self, dim: int, kernel: int, dropout: float):
        super().__init__()
        self.expand = nn.Linear(dim, 2 * dim)
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = MaskedBatchNorm(dim, momentum=0.05)
        self.project = nn.Linear(dim, dim)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # (B, T, D) normalised, (B, T)
        value, gate = self.expand(x).chunk(2, dim=-1)
        y = value * torch.sigmoid(gate) * mask.unsqueeze(-1).to(x.dtype)
        y = self.dwconv(y.transpose(1, 2)).transpose(1, 2)
        y = F.silu(self.norm(y, mask))
        return self.dropout(self.project(y))

    def export_form(self, norm: nn.LayerNorm | Affine) -> ConvModuleExport:
        return ConvModuleExport(self, norm)


class ConvModuleExport(ExportForm):
    """``conv(norm(x))`` on (n, D) frames with ``valid`` (n, 1) float: the norm's affine folded
    into the GLU's two halves (an :class:`~aslfs_pl.model.layers.Affine` for ``norm``: the input
    read as it is, times its scale plus its bias), the batch norm into the depthwise conv, whose
    zero padding is concatenated (F.pad does not lower with a symbolic frame count)."""

    def __init__(self, conv: ConvModule, norm: nn.LayerNorm | Affine):
        super().__init__()
        d = conv.project.in_features
        w, b = fold_norm(conv.expand, norm)
        self.put_weights("value", w[:d], b[:d])
        self.put_weights("gate", w[d:], b[d:])
        self.normalised = isinstance(norm, nn.LayerNorm)
        if self.normalised:
            self.put("eps", const(norm.eps))
        scale, shift = bn_scale_shift(conv.norm)
        self.put("conv_w", conv.dwconv.weight * scale[:, None, None])
        self.put("conv_b", conv.dwconv.bias * scale + shift)
        self.put_linear("project", conv.project)
        self.covers(conv.expand, norm, conv.dwconv, conv.norm)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        xn = normalise(x, self.eps) if self.normalised else x
        y = linear(xn, self.weights("value")) * sigmoid(linear(xn, self.weights("gate"))) * valid
        d, k = self.conv_w.shape[0], self.conv_w.shape[2]
        zeros = torch.full((k // 2, d), 0.0)
        padded = torch.cat([zeros, y, zeros], 0)
        y = F.conv1d(padded.t()[None], self.conv_w, self.conv_b, groups=d)[0].t()  # (n, D)
        return linear(y * sigmoid(y), self.weights("project"))


class ConformerBlock(nn.Module):
    """One block. Pre-norm: each sub-layer is ``x + f(LayerNorm(x))``; ``post_norm``:
    ``LayerNorm(x + f(x * scale + bias))`` (the same norms, after the sum; the scale and bias
    per sub-layer, :class:`~aslfs_pl.model.layers.Affine`).

    ``macaron`` (Conformer): half-step MLP, self-attention, conv module, half-step MLP, then a
    layer norm of the block's output. Otherwise (Squeezeformer): self-attention, MLP, conv
    module, MLP.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: int,
        kernel: int,
        dropout: float,
        drop_path: float,
        macaron: bool,
        post_norm: bool = False,
    ):
        super().__init__()
        self.macaron, self.post_norm = macaron, post_norm
        self.inputs = nn.ModuleDict(
            {name: Affine(dim) for name in ("mlp1", "attn", "conv", "mlp2")} if post_norm else {}
        )
        self.mlp_scale = 0.5 if macaron else 1.0
        self.mlp1_norm, self.mlp1 = nn.LayerNorm(dim), MLP(dim, mlp_ratio, dropout)
        self.attn_norm, self.attn = nn.LayerNorm(dim), Attention(dim, heads, dropout)
        self.conv_norm, self.conv = nn.LayerNorm(dim), ConvModule(dim, kernel, dropout)
        self.mlp2_norm, self.mlp2 = nn.LayerNorm(dim), MLP(dim, mlp_ratio, dropout)
        self.out_norm = nn.LayerNorm(dim) if macaron else None
        self.dropout = Dropout(dropout)
        self.drop_path = DropPath(drop_path)

    def _residual(self, x: Tensor, name: str, module) -> Tensor:
        """Sub-layer ``name``'s residual step, ``module`` the sub-layer on its input."""
        norm = getattr(self, f"{name}_norm")
        if self.post_norm:
            return norm(x + self.drop_path(module(self.inputs[name](x))))
        return x + self.drop_path(module(norm(x)))

    def forward(self, x: Tensor, valid: Tensor, mask: Tensor, rotation: Rotation) -> Tensor:
        def mlp(x: Tensor, name: str) -> Tensor:
            return self._residual(x, name, lambda h: self.mlp_scale * getattr(self, name)(h))

        def attend(x: Tensor) -> Tensor:
            return self._residual(
                x, "attn", lambda h: self.dropout(self.attn(h, h, mask, rotation))
            )

        x = attend(mlp(x, "mlp1")) if self.macaron else mlp(attend(x), "mlp1")
        x = self._residual(x, "conv", lambda h: self.conv(h, valid))
        x = mlp(x, "mlp2")
        return self.out_norm(x) if self.out_norm is not None else x

    def export_form(self, rotary: bool) -> ConformerBlockExport:
        return ConformerBlockExport(self, rotary)


class ConformerBlockExport(ExportForm):
    """:class:`ConformerBlock` on (n, D) frames, given the additive score bias (n, n)."""

    def __init__(self, block: ConformerBlock, rotary: bool):
        super().__init__()
        self.macaron, self.mlp_scale, self.post_norm = (
            block.macaron,
            block.mlp_scale,
            block.post_norm,
        )
        reads = {  # what each sub-layer reads: a pre-norm (folded) or a post-norm block's Affine
            name: block.inputs[name] if block.post_norm else getattr(block, f"{name}_norm")
            for name in ("mlp1", "attn", "conv", "mlp2")
        }
        self.mlp1 = export_form(block.mlp1, reads["mlp1"])
        self.attn = export_form(block.attn, reads["attn"], heads_apart=True, rotary=rotary)
        self.conv = export_form(block.conv, reads["conv"])
        self.mlp2 = export_form(block.mlp2, reads["mlp2"])
        if block.post_norm:  # the norms after each sum: applied whole (eps, scale, shift)
            for name in reads:
                norm = getattr(block, f"{name}_norm")
                self.put(f"{name}_w", norm.weight)
                self.put(f"{name}_b", norm.bias)
                self.covers(norm)
            self.put("post_eps", const(block.attn_norm.eps))
        if block.out_norm is not None:
            self.put("out_w", block.out_norm.weight)
            self.put("out_b", block.out_norm.bias)
            self.put("eps", const(block.out_norm.eps))
            self.covers(block.out_norm)

    def _sum(self, x: Tensor, y: Tensor, name: str) -> Tensor:
        """A residual sum, and in a post-norm block the norm after it."""
        if not self.post_norm:
            return x + y
        weight, bias = getattr(self, f"{name}_w"), getattr(self, f"{name}_b")
        return normalise(x + y, self.post_eps) * weight + bias

    def _mlp(self, x: Tensor, name: str) -> Tensor:
        y = getattr(self, name)(x)
        return self._sum(x, y * self.mlp_scale if self.mlp_scale != 1.0 else y, name)

    def forward(self, x: Tensor, valid: Tensor, bias: Tensor, rotation: Rotation) -> Tensor:
        def attend(x: Tensor) -> Tensor:
            h = x if self.post_norm else self.attn.normalise(x)
            return self._sum(x, self.attn.over_frames(h, bias, rotation), "attn")

        x = attend(self._mlp(x, "mlp1")) if self.macaron else self._mlp(attend(x), "mlp1")
        x = self._mlp(self._sum(x, self.conv(x, valid), "conv"), "mlp2")
        if self.macaron:
            x = normalise(x, self.eps) * self.out_w + self.out_b
        return x


class ConvAttentionStack(Encoder):
    """A stack of :class:`ConformerBlock` with a final layer norm: (B, T, D) -> (B, T, D); the
    body of the Conformer and Squeezeformer families (each registered in its own module).

    Args:
        config: the network's settings (sizes, dropout, drop path, rotary positions).
        kernel: the conv module's depthwise kernel.
        macaron: Conformer blocks (else Squeezeformer blocks).
        post_norm: post-norm blocks (:class:`ConformerBlock`).
        time_reduction: frames merged into one (a depthwise conv of that kernel and stride over
            the valid frames) from block ``blocks // 2`` on; before the last block they are
            repeated back and added to the frames from before the merge. 1: no merge. Any frame
            count works: the last group is padded with invalid frames.
    The drop path rate grows linearly with depth, to ``drop_path`` in the last block. With
    ``model.rotary`` every self-attention layer rotates its queries and keys (tables for up to
    ``max_frames`` frames in the export).
    """

    def __init__(
        self,
        config: ModelConfig,
        kernel: int,
        macaron: bool,
        time_reduction: int = 1,
        post_norm: bool = False,
    ):
        super().__init__()
        c, blocks = config, config.encoder_blocks
        if time_reduction > 1 and blocks < 3:
            raise ValueError(f"time_reduction {time_reduction} needs >= 3 blocks, got {blocks}")
        self.blocks = nn.ModuleList(
            ConformerBlock(
                c.dim,
                c.heads,
                c.mlp_ratio,
                kernel,
                c.dropout,
                c.drop_path * (i + 1) / blocks,
                macaron,
                post_norm,
            )
            for i in range(blocks)
        )
        self.time_reduction, self.rotary, self.max_frames = time_reduction, c.rotary, c.max_frames
        self.head_dim = c.dim // c.heads
        self.merge_at, self.restore_at = blocks // 2, blocks - 1
        if time_reduction > 1:
            self.merge = nn.Conv1d(
                c.dim, c.dim, time_reduction, stride=time_reduction, groups=c.dim
            )
        self.norm = nn.LayerNorm(c.dim)

    def _merge(self, x: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        f, t = self.time_reduction, x.shape[1]
        pad = -t % f
        x = F.pad(x * valid.unsqueeze(-1).to(x.dtype), (0, 0, 0, pad))
        valid = F.pad(valid, (0, pad), value=False)
        merged = self.merge(x.transpose(1, 2)).transpose(1, 2)  # (B, ceil(T / f), D)
        return merged, valid.reshape(valid.shape[0], -1, f).any(-1)

    def _rotation(self, frames: int, device: torch.device) -> Rotation:
        return rotary_tables(frames, self.head_dim, device) if self.rotary else None

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        t, reduced = x.shape[1], self.time_reduction > 1
        frames = (valid, global_mask(valid), self._rotation(t, x.device))
        now, before = frames, x
        for i, block in enumerate(self.blocks):
            if reduced and i == self.merge_at:
                before = x
                x, merged_valid = self._merge(x, valid)
                now = (
                    merged_valid,
                    global_mask(merged_valid),
                    self._rotation(x.shape[1], x.device),
                )
            if reduced and i == self.restore_at:
                x = before + x.repeat_interleave(self.time_reduction, dim=1)[:, :t]
                now = frames
            x = block(x, *now)
        return self.norm(x)

    def export_form(self) -> ConvAttentionStackExport:
        return ConvAttentionStackExport(self)


class ConvAttentionStackExport(ExportForm):
    """:class:`ConvAttentionStack` on (n, D) frames -> (n, D) normalised WITHOUT the final norm's
    affine (the decoder's cross-attention and the CTC head fold it)."""

    def __init__(self, enc: ConvAttentionStack):
        super().__init__()
        self.blocks = nn.ModuleList(export_form(block, enc.rotary) for block in enc.blocks)
        self.rotary = RotaryExport(enc.head_dim, enc.max_frames) if enc.rotary else None
        self.f = enc.time_reduction
        self.merge_at, self.restore_at = enc.merge_at, enc.restore_at
        if self.f > 1:
            self.put("merge_w", enc.merge.weight)
            self.put("merge_b", enc.merge.bias)
            self.put("count", torch.ones(1, 1, self.f))
            self.put("first", F.one_hot(torch.tensor([[0]]), self.f).float())  # (1, 1, f)
            self.put("per_group", const(1.0 / self.f))
            self.put("one", const(1.0))
            self.put("group_size", const(float(self.f)))
            self.covers(enc.merge)
        self.put("eps", const(enc.norm.eps))
        self.put("half_step", const(0.5))
        self.put("minus_half", const(-0.5))

    def _frames(self, valid: Tensor, j: Tensor) -> tuple[Tensor, Tensor, Rotation]:
        """valid (n, 1), the score bias (n, n): valid keys and each frame itself, the rotation."""
        offset = j.unsqueeze(1) - j.unsqueeze(0)
        is_self = ((offset > self.minus_half) & (offset < self.half_step)).to(torch.float32)
        bias = attention_bias(torch.maximum(valid.t(), is_self))
        return valid, bias, self.rotary(j) if self.rotary is not None else None

    def _grouped(self, rows: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        """A depthwise conv of kernel and stride f, ``weight`` (C, 1, f), over (n, C) rows
        padded with 3f - 1 zero rows: (C, ceil(n / f) + 2), channels first. The two extra
        groups are invalid frames (nothing reads them); they make the merged count provably
        >= 2, which the exporter needs (a count that might be 1 puts a guard on the frame
        axis, and so does a one-channel (count, 1) view with strides (1, count): one-channel
        results are read as rows)."""
        c = rows.shape[1]
        padded = torch.cat([rows, torch.full((3 * self.f - 1, c), 0.0)], 0)
        return F.conv1d(padded.t()[None], weight, bias, stride=self.f, groups=c)[0]

    def forward(self, x: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        """``valid`` (n, 1) float, ``j`` (n,) frame indices as float."""
        frames = self._frames(valid, j)
        now, before = frames, x
        for i, block in enumerate(self.blocks):
            if self.f > 1 and i == self.merge_at:
                before = x
                x = self._grouped(x * valid, self.merge_w, self.merge_b).t()  # (m, D)
                seen = (self._grouped(valid, self.count)[0] > self.half_step).to(torch.float32)
                # (first frame + f) / f - 1 = the group's index; -1 for the two extra groups,
                # so that no real group takes one of them for itself (is_self)
                starts = self._grouped((j + self.group_size).unsqueeze(1), self.first)[0]
                merged_j = starts * self.per_group - self.one
                now = self._frames(seen.unsqueeze(1), merged_j)
            if self.f > 1 and i == self.restore_at:
                group = ((j + self.half_step) * self.per_group).to(torch.int32)  # floor(j / f)
                x = before + F.embedding(group, x)
                now = frames
            x = block(x, *now)
        return normalise(x, self.eps)


@register
class Conformer(ConvAttentionStack):
    """The Conformer family (Gulati et al. 2020): half-step MLP, self-attention, conv module,
    half-step MLP, layer norm in every block; the frame rate is kept throughout."""

    name = "conformer"
    Settings = ConformerSettings
    legacy = {"block_kernel": "kernel"}

    def __init__(self, config: ModelConfig):
        s = config.encoder_settings
        super().__init__(config, s.kernel, macaron=True, post_norm=s.post_norm)
