"""Building blocks: masked attention with an optional KV cache, MLP, masked batch norm, positions
(dropout and drop path: :mod:`aslfs_pl.model.regularisation`).

Attention trains through ``torch.nn.functional.scaled_dot_product_attention``: the fused kernels
where the device has one (flash attention on the CPU without dropout; flash / memory-efficient
on a GPU, dropout inside the kernel), its math otherwise (an XLA device, where the compiler
fuses). Masks are boolean, True = may attend; every query row keeps at least one True (its own
position, or the first key) so no softmax row is empty.

Each layer's deployment twin (``*Export``, see :mod:`aslfs_pl.export_ops`) follows it, written as
explicit matmuls and softmax (what lowers to TFLite).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aslfs_pl.export_ops import (
    ExportForm,
    const,
    fold_norm,
    linear,
    normalise,
)
from aslfs_pl.model.regularisation import Dropout, cheap_mask_off, dropout_mask

#: Score of a masked key. Scores are masked and softmaxed in float32 (-1e9 overflows fp16, and
#: every query keeps one key, so a row is never all masked): exp gives exactly 0.
MASK_VALUE = -1e9


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
        self.dropout = Dropout(dropout)  # the attention weights' rate (see :func:`attention`)

    def split_heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape  # (B, T, D) -> (B, H, T, D/H)
        return x.reshape(b, t, self.heads, self.head_dim).transpose(1, 2)

    def project_kv(self, kv: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of ``kv`` (B, S, D), each (B, H, S, D/H); cacheable."""
        k, v = self.kv(kv).chunk(2, dim=-1)
        return self.split_heads(k), self.split_heads(v)

    def attend(
        self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, rotation: Rotation = None
    ) -> Tensor:
        """Queries from ``x`` (B, T, D) attend to ``k``, ``v``; ``mask`` broadcasts to (B, H, T, S).
        ``rotation``: rotary tables of the query frames (the keys come rotated)."""
        q = self.split_heads(self.q(x))
        if rotation is not None:
            q = rotate(q, rotation)
        y = attention(q, k, v, mask, self.weight_dropout())  # (B, H, T, D/H)
        return self.out(y.transpose(1, 2).flatten(2))

    def weight_dropout(self) -> float:
        """The attention weights' dropout rate in force (0 in evaluation)."""
        return self.dropout.p if self.training else 0.0

    def forward(
        self, x: Tensor, kv: Tensor, mask: Tensor | None, rotation: Rotation = None
    ) -> Tensor:
        """``rotation``: rotary tables (:func:`rotary_tables`) of self-attention's frames."""
        k, v = self.project_kv(kv)
        if rotation is not None:
            k = rotate(k, rotation)
        return self.attend(x, k, v, mask, rotation)

    def export_form(
        self,
        norm: nn.LayerNorm,
        kv_norm: nn.LayerNorm | None = None,
        heads_apart: bool = False,
        rotary: bool = False,
    ) -> AttentionExport:
        return AttentionExport(self, norm, kv_norm, heads_apart, rotary)


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout: float) -> Tensor:
    """softmax(q k^T / sqrt(d), masked) v with the weights dropped at rate ``dropout``: (..., T, d)
    queries, (..., S, d) keys and values, a boolean ``mask`` broadcasting to (..., T, S).

    ``scaled_dot_product_attention``, except on the CPU with dropout, where that kernel has none
    and falls back to its math with a Bernoulli draw per weight: there the same math runs with
    :func:`dropout_mask`'s cheaper draw (the same distribution).
    """
    if cheap_mask_off(q, dropout):
        return F.scaled_dot_product_attention(q, k, v, mask, dropout)
    scores = ((q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-1, -2)).float()
    if mask is not None:  # one pass each way (masked_fill copies, then fills)
        scores = torch.where(mask, scores, MASK_VALUE)
    weights = torch.softmax(scores, dim=-1).to(v.dtype)
    return (weights * dropout_mask(weights.shape, dropout, v.dtype)) @ v


#: Rotary tables (cos, sin), each (T, head width), or None: no rotation.
Rotation = tuple[Tensor, Tensor] | None


def rotary_tables(length: int, head_dim: int, device: torch.device | None = None) -> Rotation:
    """cos and sin, (length, head_dim), of rotary position embeddings (Su et al. 2021,
    arXiv:2104.09864): frame t turns each channel pair (i, i + head_dim / 2) of a query or key by
    the angle t * 10000^(-2i / head_dim), so a score depends on the two frames' distance."""
    half = head_dim // 2
    scale = -math.log(10000.0) / half
    freq = torch.exp(torch.arange(half, dtype=torch.float32, device=device) * scale)
    angle = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1) * freq
    angle = torch.cat([angle, angle], -1)
    return angle.cos(), angle.sin()


def rotate(z: Tensor, rotation: tuple[Tensor, Tensor]) -> Tensor:
    """Rotary embedding of ``z`` (..., T, head_dim) by its (T, head_dim) tables."""
    cos, sin = rotation
    half = z.shape[-1] // 2
    return z * cos + torch.cat([-z[..., half:], z[..., :half]], -1) * sin


class RotaryExport(ExportForm):
    """The rotary tables of frames ``j`` (n,) (indices as float), gathered from tables of
    ``length`` frames built once (the frame axis is symbolic; frames past the tables are
    invalid ones and read its last row)."""

    def __init__(self, head_dim: int, length: int):
        super().__init__()
        cos, sin = rotary_tables(length, head_dim)
        self.put("cos", cos)
        self.put("sin", sin)
        self.put("last", const(length - 1.0))
        self.put("half_step", const(0.5))

    def forward(self, j: Tensor) -> tuple[Tensor, Tensor]:
        # + 0.5: an index computed in float (k * (1 / f)) may lie a rounding error below k
        pos = torch.minimum(j + self.half_step, self.last).to(torch.int32)
        return F.embedding(pos, self.cos), F.embedding(pos, self.sin)


def half_turn(head_dim: int) -> Tensor:
    """The matrix R with ``z @ R == cat([-z2, z1])`` (z = [z1, z2]): the rotation's second term
    as a linear map, which the export folds into a projection's weights."""
    half = head_dim // 2
    r = torch.zeros(head_dim, head_dim)
    r[torch.arange(half) + half, torch.arange(half)] = -1.0
    r[torch.arange(half), torch.arange(half) + half] = 1.0
    return r


def global_mask(valid: Tensor) -> Tensor:
    """(B, T) -> (B, 1, T, T): every frame sees all valid frames, and itself."""
    t = valid.shape[-1]
    eye = torch.eye(t, dtype=torch.bool, device=valid.device)
    return valid[:, None, None, :] | eye


def attention_bias(allowed: Tensor) -> Tensor:
    """1 = may attend, 0 = masked -> additive score bias (softmax gives masked keys exactly 0)."""
    return (allowed - 1.0) * -MASK_VALUE


class AttentionExport(ExportForm):
    """:class:`Attention` reading the output of ``norm`` (its affine folded into q, k, v; the
    score scale folded into q), on 2-D tensors.

    ``kv_norm``: the norm in front of the keys/values when it differs from ``norm``
    (cross-attention reads the encoder's final norm). ``heads_apart``: keep per-head projections
    for :meth:`over_frames` (splitting a frame-sized tensor into heads by reshape lowers to
    run-time shape arithmetic, measured several times slower than per-head matmuls); otherwise
    whole projections for the decoder's one-token steps, whose static shapes make the head split
    a free reshape. ``rotary``: queries and keys can be rotated (:meth:`project`).
    """

    def __init__(
        self,
        attn: Attention,
        norm: nn.LayerNorm,
        kv_norm: nn.LayerNorm | None,
        heads_apart: bool,
        rotary: bool = False,
    ):
        super().__init__()
        self.heads, self.head_dim, self.heads_apart = attn.heads, attn.head_dim, heads_apart
        d = attn.q.out_features
        scale = 1.0 / math.sqrt(attn.head_dim)
        self.covers(attn.q, attn.kv, attn.out, norm, kv_norm or norm)
        q_w, q_b = fold_norm(attn.q, norm)
        kv_w, kv_b = fold_norm(attn.kv, kv_norm or norm)
        projections = {
            "q": (q_w * scale, q_b * scale),
            "k": (kv_w[:d], kv_b[:d]),
            "v": (kv_w[d:], kv_b[d:]),
        }
        for name, (w, b) in projections.items():
            if heads_apart:
                dh = self.head_dim
                for h in range(self.heads):
                    part = slice(h * dh, (h + 1) * dh)
                    self.put_weights(f"{name}{h}", w[part], b[part])
                    if rotary and name in "qk":  # the rotation's second term, folded
                        r = half_turn(dh)
                        self.put_weights(f"{name}{h}_turned", r.t() @ w[part], b[part] @ r)
            else:
                self.put_weights(name, w, b)
        self.put_weights("out", attn.out.weight, attn.out.bias)
        if isinstance(norm, nn.LayerNorm):  # an Affine's input is read as it is
            self.put("eps", const(norm.eps))

    def normalise(self, x: Tensor) -> Tensor:
        """The query side's norm without its affine (folded into the projections)."""
        return normalise(x, self.eps)

    def project(self, xn: Tensor, name: str, rotation: Rotation = None) -> Tensor:
        """The projection ``name`` (a query or key projection when ``rotation`` is given) of
        normalised rows ``xn`` (n, D), rotated by ``rotation``: over frames, one head's
        projection and the tables (n, D/H), the rotation's second term folded into the weights;
        on the decoder's static rows, the whole projection split into heads by a free reshape
        and :func:`rotate` by tables (1 or n, 1, D/H)."""
        y = linear(xn, self.weights(name))
        if rotation is None:
            return y
        if self.heads_apart:  # one head's projection ("q0", "k1", ...)
            cos, sin = rotation
            return y * cos + linear(xn, self.weights(f"{name}_turned")) * sin
        n = y.shape[0]
        return rotate(y.reshape(n, self.heads, self.head_dim), rotation).reshape(n, -1)

    def over_frames(self, xn: Tensor, bias: Tensor, rotation: Rotation = None) -> Tensor:
        """Self-attention of normalised frames ``xn`` (n, D), one head at a time; ``bias``
        (n, n) additive; ``rotation``: the frames' rotary tables (n, D/H) when built with
        ``rotary``. Needs ``heads_apart``."""
        outs = []
        for h in range(self.heads):
            q = self.project(xn, f"q{h}", rotation)
            k = self.project(xn, f"k{h}", rotation)
            scores = q @ k.t() + bias  # (n, n)
            outs.append(torch.softmax(scores, dim=-1) @ linear(xn, self.weights(f"v{h}")))
        return linear(torch.cat(outs, dim=-1), self.weights("out"))

    def keys_values(self, xn: Tensor, rotation: Rotation = None) -> tuple[Tensor, Tensor]:
        """Keys (H, D/H, S) and values (H, S, D/H) of normalised rows ``xn`` (S, D); ``rotation``:
        the keys' rotary tables (1 or S, 1, D/H)."""
        s, h, dh = xn.shape[0], self.heads, self.head_dim
        k = self.project(xn, "k", rotation).reshape(s, h, dh).permute(1, 2, 0)
        v = linear(xn, self.weights("v")).reshape(s, h, dh).permute(1, 0, 2)
        return k, v

    def step_keys_values(self, xn: Tensor, rotation: Rotation = None) -> tuple[Tensor, Tensor]:
        """:meth:`keys_values` of one row (1, D), by free reshapes: (H, D/H, 1), (H, 1, D/H)."""
        h, dh = self.heads, self.head_dim
        k = self.project(xn, "k", rotation).reshape(h, dh, 1)
        v = linear(xn, self.weights("v")).reshape(h, 1, dh)
        return k, v

    def attend(
        self, xn: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, rotation: Rotation = None
    ) -> Tensor:
        """Normalised queries ``xn`` (R, D), R static (one decoder step, or a whole known
        phrase), over keys (H, D/H, S) and values (H, S, D/H); ``bias`` adds to the (H, R, S)
        scores; ``rotation``: the queries' rotary tables (1 or R, 1, D/H). One query splits into
        heads by free reshapes."""
        r, h, dh = xn.shape[0], self.heads, self.head_dim
        q = self.project(xn, "q", rotation)
        q = q.reshape(h, 1, dh) if r == 1 else q.reshape(r, h, dh).permute(1, 0, 2)
        scores = torch.bmm(q, k)  # (H, R, S)
        if bias is not None:
            scores = scores + bias
        y = torch.bmm(torch.softmax(scores, dim=-1), v)  # (H, R, D/H)
        y = y.reshape(1, h * dh) if r == 1 else y.permute(1, 0, 2).reshape(r, h * dh)
        return linear(y, self.weights("out"))


class MLP(nn.Module):
    """Position-wise feed-forward: D -> ``hidden`` (default ratio * D) -> D."""

    def __init__(self, dim: int, ratio: int = 4, dropout: float = 0.0, hidden: int = 0):
        super().__init__()
        hidden = hidden or ratio * dim
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.fc2(F.gelu(self.fc1(x))))

    def export_form(self, norm: nn.LayerNorm | Affine) -> MLPExport:
        return MLPExport(self, norm)


class MLPExport(ExportForm):
    """``mlp(norm(x))`` on (n, D) rows, the norm's affine folded into fc1; with an
    :class:`Affine` for ``norm`` (a post-norm block's input scale), ``mlp(x * scale + bias)``."""

    def __init__(self, mlp: MLP, norm: nn.LayerNorm | Affine):
        super().__init__()
        self.put_linear("fc1", mlp.fc1, norm)
        self.put_linear("fc2", mlp.fc2)
        self.normalised = isinstance(norm, nn.LayerNorm)
        if self.normalised:
            self.put("eps", const(norm.eps))

    def forward(self, x: Tensor) -> Tensor:
        x = normalise(x, self.eps) if self.normalised else x
        return linear(F.gelu(linear(x, self.weights("fc1"))), self.weights("fc2"))


class Affine(nn.Module):
    """A learnable per-channel scale and bias, ``x * weight + bias`` (initially the identity):
    what a post-norm block's module reads its input through (the 1st place's Squeezeformer).
    Named as a norm's affine, so the export forms fold it as they fold a norm's."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight + self.bias


class MaskedBatchNorm(nn.BatchNorm1d):
    """Batch norm over the channels of (B, T, C) frames whose statistics count valid frames only.

    In training the mean and variance are taken over the frames where ``mask`` is true, so they
    do not depend on how much padding a batch carries (a batch padded to 128 or to 384 frames
    normalises alike); the running statistics, the parameters and evaluation are
    :class:`torch.nn.BatchNorm1d`'s (same state-dict keys; the export folds the running
    statistics, :func:`~aslfs_pl.export_ops.bn_scale_shift`). Written with sums over the whole
    batch and no data-dependent shapes, so it runs as one graph under torch-xla and reduces over
    the whole global batch under SPMD.
    """

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # (B, T, C), (B, T) -> (B, T, C)
        if not self.training:  # running statistics: nn.BatchNorm1d's own evaluation
            return super().forward(x.transpose(1, 2)).transpose(1, 2)
        w = mask.unsqueeze(-1).to(torch.float32)  # (B, T, 1)
        xf = x.float()
        n = w.sum().clamp(min=1.0)
        mean = (xf * w).sum((0, 1)) / n  # (C,)
        var = ((xf - mean).square() * w).sum((0, 1)) / n  # biased, as batch norm normalises
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            unbiased = var.detach() * (n / (n - 1.0).clamp(min=1.0))
            self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
            self.num_batches_tracked.add_(1)
        y = (xf - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
        return y.to(x.dtype)


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """(length, dim) sine/cosine position codes (Vaswani et al. 2017)."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe
