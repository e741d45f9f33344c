"""Regularisation layers: dropout with a cheap CPU mask, stochastic depth (drop path), and the
switch that turns them all off and on again (late dropout)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

#: Random bits per dropout decision on the CPU: a 16-bit draw, so the rate is a multiple of 2^-16.
DROP_BITS = 16


def dropout_mask(shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype) -> Tensor:
    """A CPU dropout mask of ``shape``: 0 with probability ``p`` rounded to a multiple of 2^-16
    (0.1 -> 0.100006), else 1 / (1 - that probability), drawn from torch's generator. Each 64-bit
    draw gives four 16-bit numbers: a quarter of the generator calls of ``bernoulli_``, whose draws
    were the largest cost after the matrix products in the seed's CPU training step (13%; see
    docs/benchmarks.md). Applied as ``x * mask``: one pass forward and one backward (autograd
    keeps the mask)."""
    n = math.prod(shape)
    rate = round(p * 2**DROP_BITS) / 2**DROP_BITS
    threshold = round(p * 2**DROP_BITS) - 2 ** (DROP_BITS - 1)  # int16 lies in [-2^15, 2^15)
    bits = torch.empty(-(-n // 4), dtype=torch.int64).random_(-(2**63), None)
    dropped = (bits.view(torch.int16)[:n] < threshold).view(shape)
    zero, kept = torch.zeros((), dtype=dtype), torch.full((), 1.0 / (1.0 - rate), dtype=dtype)
    return torch.where(dropped, zero, kept)


def cheap_mask_off(x: Tensor, p: float) -> bool:
    """Whether dropout at rate ``p`` on ``x`` leaves :func:`dropout_mask` aside: no dropout, not
    on the CPU, or inside ``torch.compile``."""
    return p == 0.0 or x.device.type != "cpu" or torch.compiler.is_compiling()


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose mask on the CPU is :func:`dropout_mask`'s (the same distribution, a
    quarter of the random draws); on other devices, and inside ``torch.compile`` (which cannot
    trace the in-place draw), torch's own (a GPU draws in its fused kernel, XLA in the compiled
    graph)."""

    def forward(self, x: Tensor) -> Tensor:
        if cheap_mask_off(x, self.p if self.training else 0.0):
            return super().forward(x)
        return x * dropout_mask(x.shape, self.p, x.dtype)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016, arXiv:1603.09382) of a residual branch.

    In training each sequence's branch output is dropped with probability ``p`` and the kept ones
    are scaled by 1 / (1 - p), so the expectation is unchanged; in evaluation it is the identity.
    ``p`` may be changed between steps (see the task's ``dropout_start``).
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path rate {p} must lie in [0, 1)")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) >= self.p
        return x * (keep.to(x.dtype) / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Regularisation:
    """Every dropout and drop path of a network, switched off and on again with their configured
    rates kept (late dropout: regularisation only after the first part of the training)."""

    def __init__(self, net: nn.Module):
        self.rates = [(m, m.p) for m in net.modules() if isinstance(m, nn.Dropout | DropPath)]

    def switch(self, on: bool) -> None:
        for module, rate in self.rates:
            module.p = rate if on else 0.0
