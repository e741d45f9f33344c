"""One decoder block: causal self-attention, cross-attention to the frames, MLP (pre-norm), and
its deployment twin, one step or a set of rows of one sequence with a KV cache
(:mod:`aslfs_pl.export_ops`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aslfs_pl.export_ops import ExportForm, export_form
from aslfs_pl.model.layers import (
    MLP,
    Attention,
    Rotation,
    rotate,
)
from aslfs_pl.model.regularisation import Dropout


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention to the frames, MLP; each pre-norm + residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float, mlp_hidden: int = 0):
        super().__init__()
        self.self_norm = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads, dropout)
        self.cross_norm = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, heads, dropout)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio, dropout, hidden=mlp_hidden)
        self.dropout = Dropout(dropout)

    def forward(
        self,
        y: Tensor,
        self_mask: Tensor | None,
        cross_kv: tuple[Tensor, Tensor],
        cross_mask: Tensor,
        cache: tuple[Tensor, Tensor] | None = None,
        rotation: Rotation = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """(B, L, D) -> (B, L, D) and this layer's self-attention keys/values.

        With ``cache`` (keys/values of the earlier positions) ``y`` holds only the new
        positions; the returned keys/values cover all of them (the next step's cache).
        ``rotation``: rotary tables of the new positions (the cached keys come rotated).
        """
        h = self.self_norm(y)
        k, v = self.self_attn.project_kv(h)
        if rotation is not None:
            k = rotate(k, rotation)
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        y = y + self.dropout(self.self_attn.attend(h, k, v, self_mask, rotation))
        y = y + self.dropout(self.cross_attn.attend(self.cross_norm(y), *cross_kv, cross_mask))
        return y + self.mlp(self.mlp_norm(y)), (k, v)

    def export_form(self, memory_norm: nn.LayerNorm, rotary: bool = False) -> DecoderBlockExport:
        return DecoderBlockExport(self, memory_norm, rotary)


class DecoderBlockExport(ExportForm):
    """:class:`DecoderBlock` for one token at a time; ``memory_norm``: the norm whose affine-free
    output the cross-attention reads (its affine is folded into the cross keys/values);
    ``rotary``: its self-attention rotates queries and keys."""

    def __init__(self, block: DecoderBlock, memory_norm: nn.LayerNorm, rotary: bool = False):
        super().__init__()
        self.self_attn = export_form(block.self_attn, block.self_norm, rotary=rotary)
        self.cross_attn = export_form(block.cross_attn, block.cross_norm, kv_norm=memory_norm)
        self.mlp = export_form(block.mlp, block.mlp_norm)

    def step(
        self,
        y: Tensor,
        cache: tuple[Tensor, Tensor] | None,
        cross_kv: tuple[Tensor, Tensor],
        cross_bias: Tensor,
        self_bias: Tensor | None = None,
        rotation: Rotation = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The next position of R hypotheses, ``y`` (R, D) -> (R, D), and the self-attention
        cache including them (R columns more). ``self_bias`` (R, S): which cached keys each row
        may see (beam search); None: all of them (R = 1, greedy). ``rotation``: the step's
        rotary tables (1, 1, D/H)."""
        xn = self.self_attn.normalise(y)
        if y.shape[0] == 1:
            k, v = self.self_attn.step_keys_values(xn, rotation)
        else:
            k, v = self.self_attn.keys_values(xn, rotation)
        if cache is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 1)
        y = y + self.self_attn.attend(xn, k, v, self_bias, rotation)
        y = y + self.cross_attn.attend(self.cross_attn.normalise(y), *cross_kv, cross_bias)
        return y + self.mlp(y), (k, v)

    def rows(
        self,
        y: Tensor,
        self_bias: Tensor,
        cross_kv: tuple[Tensor, Tensor],
        cross_bias: Tensor,
        rotation: Rotation = None,
    ) -> Tensor:
        """All positions of known phrases at once: ``y`` (R, D), ``self_bias`` (R, R),
        ``rotation``: each row's rotary tables (R, 1, D/H)."""
        xn = self.self_attn.normalise(y)
        kv = self.self_attn.keys_values(xn, rotation)
        y = y + self.self_attn.attend(xn, *kv, self_bias, rotation)
        y = y + self.cross_attn.attend(self.cross_attn.normalise(y), *cross_kv, cross_bias)
        return y + self.mlp(y)


def memory_mask(valid: Tensor) -> Tensor:
    """(B, T) -> (B, 1, 1, T) cross-attention mask; a sequence with no valid frame sees frame 0."""
    first = torch.zeros_like(valid)
    first[:, 0] = True
    return (valid | (first & ~valid.any(dim=1, keepdim=True)))[:, None, None, :]
