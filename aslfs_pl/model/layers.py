"""Building blocks: masked attention with an optional KV cache, MLP, causal conv + ECA, positions.

Attention is written as explicit matmuls + softmax (no fused kernel) so that the same modules train
on CPU/GPU/TPU and lower to TFLite. Masks are boolean, True = may attend; every query row keeps at
least one True (its own position, or the first key) so no softmax row is empty.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MASK_VALUE = -1e9  # added to masked scores; finite so bf16/fp16 stay NaN-free


class Attention(nn.Module):
    """Multi-head attention over ``kv`` (self-attention when ``kv`` is ``x``)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape  # (B, T, D) -> (B, H, T, D/H)
        return x.reshape(b, t, self.heads, self.head_dim).transpose(1, 2)

    def project_kv(self, kv: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of ``kv`` (B, S, D), each (B, H, S, D/H); cacheable."""
        k, v = self.kv(kv).chunk(2, dim=-1)
        return self.split_heads(k), self.split_heads(v)

    def attend(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """Queries from ``x`` (B, T, D) attend to ``k``, ``v``; ``mask`` broadcasts to (B, H, T, S)."""
        q = self.split_heads(self.q(x))
        scores = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(self.head_dim))  # (B, H, T, S)
        if mask is not None:
            scores = scores.masked_fill(~mask, MASK_VALUE)
        weights = self.dropout(torch.softmax(scores.float(), dim=-1).to(v.dtype))
        y = (weights @ v).transpose(1, 2).flatten(2)  # (B, T, D)
        return self.out(y)

    def forward(self, x: Tensor, kv: Tensor, mask: Tensor | None) -> Tensor:
        k, v = self.project_kv(kv)
        return self.attend(x, k, v, mask)


class MLP(nn.Module):
    """Position-wise feed-forward: D -> ratio * D -> D."""

    def __init__(self, dim: int, ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, ratio * dim)
        self.fc2 = nn.Linear(ratio * dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.fc2(F.gelu(self.fc1(x))))


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
        self.norm = nn.BatchNorm1d(hidden, momentum=0.05)
        self.eca = ECA()
        self.project = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        y = F.silu(self.expand(x))
        y = self.dwconv(y)
        y = self.norm(y.transpose(1, 2)).transpose(1, 2)
        y = self.eca(y, mask)
        return x + self.dropout(self.project(y))


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """(length, dim) sine/cosine position codes (Vaswani et al. 2017)."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe
