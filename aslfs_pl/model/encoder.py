"""Landmark embedding and the encoder stack.

Frame count is unchanged throughout: (B, T, C) raw columns -> (B, T, D) encoded frames.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aslfs_pl.model.layers import MLP, Attention, ConvBlock, sinusoidal_positions


def local_causal_mask(valid: Tensor, window: int) -> Tensor:
    """(B, T) valid frames -> (B, 1, T, T): frame i sees valid frames i-window+1..i, and itself."""
    t = valid.shape[-1]
    i = torch.arange(t, device=valid.device)
    offset = i.unsqueeze(1) - i.unsqueeze(0)  # (T, T): query - key
    band = (offset >= 0) & (offset < window)
    return (band & valid[:, None, None, :]) | (offset == 0)


def global_mask(valid: Tensor) -> Tensor:
    """(B, T) -> (B, 1, T, T): every frame sees all valid frames, and itself."""
    t = valid.shape[-1]
    eye = torch.eye(t, dtype=torch.bool, device=valid.device)
    return valid[:, None, None, :] | eye


class Embedding(nn.Module):
    """Dense -> batch norm -> conv blocks -> + positions: (B, T, F) features -> (B, T, D)."""

    def __init__(
        self,
        in_features: int,
        dim: int,
        max_frames: int,
        conv_blocks: int,
        conv_kernel: int,
        conv_expand: int,
        dropout: float,
    ):
        super().__init__()
        self.dense = nn.Linear(in_features, dim, bias=False)
        self.norm = nn.BatchNorm1d(dim, momentum=0.05)
        self.convs = nn.ModuleList(
            ConvBlock(dim, conv_kernel, conv_expand, dropout) for _ in range(conv_blocks)
        )
        self.register_buffer("positions", sinusoidal_positions(max_frames, dim), persistent=False)

    def forward(self, feats: Tensor, mask: Tensor) -> Tensor:
        x = self.norm(self.dense(feats).transpose(1, 2)).transpose(1, 2)
        for conv in self.convs:
            x = conv(x, mask)
        return x + self.positions[: x.shape[1]]


class EncoderBlock(nn.Module):
    """``local_layers`` local causal self-attention layers, one global one, then an MLP.

    Pre-norm: each sub-layer is ``x + f(LayerNorm(x))``.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int, local_layers: int, dropout: float):
        super().__init__()
        self.local_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(local_layers))
        self.local_attn = nn.ModuleList(Attention(dim, heads, dropout) for _ in range(local_layers))
        self.global_norm = nn.LayerNorm(dim)
        self.global_attn = Attention(dim, heads, dropout)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, local_mask: Tensor, full_mask: Tensor) -> Tensor:
        for norm, attn in zip(self.local_norms, self.local_attn, strict=True):
            h = norm(x)
            x = x + self.dropout(attn(h, h, local_mask))
        h = self.global_norm(x)
        x = x + self.dropout(self.global_attn(h, h, full_mask))
        return x + self.mlp(self.mlp_norm(x))


class Encoder(nn.Module):
    """Stack of :class:`EncoderBlock` with a final layer norm: (B, T, D) -> (B, T, D)."""

    def __init__(
        self, dim: int, heads: int, mlp_ratio: int, blocks: int, local_layers: int, window: int,
        dropout: float,
    ):  # fmt: skip
        super().__init__()
        self.window = window
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, heads, mlp_ratio, local_layers, dropout) for _ in range(blocks)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        local_mask, full_mask = local_causal_mask(valid, self.window), global_mask(valid)
        for block in self.blocks:
            x = block(x, local_mask, full_mask)
        return self.norm(x)
