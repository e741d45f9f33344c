"""The deployment graph with a dynamic frame axis: a 40-frame video costs 40 frames, not 384.

litert-torch lowers a symbolic frame count only through its TFLite-native decompositions
(``litert_torch.backend.experimental.torch_tfl``: matmul, mean, softmax, where, gather, cat, slice,
comparisons of two tensors, elementwise arithmetic). LayerNorm, SiLU, masked_fill, sum, argmax,
F.pad and reshapes of frame-sized tensors do not lower with a symbolic T, so this module computes
the trained network's forward again with those ops only, on 2-D ``(frames, channels)`` tensors
(no batch axis, no reshape), one attention head at a time.

It holds the trained :class:`Seq2Seq` itself and reads its parameters at every call, so its
state_dict is the network's (``net.*`` keys) and nothing is copied: BatchNorm folding, the
feature-order permutation of the first dense layer and per-head weight slices are computed from
the parameters inside ``forward`` and constant-folded by the converter.

How the frame axis changes (T = input frames, F = ``max_frames``):
- one NaN row is appended, so the graph never sees 0 frames (T = 0 reads as one empty frame);
- n = T + 1 rows run through the model. When T > F the first F rows are the training resampling
  (``fit_length``'s indices) and the remaining T + 1 - F rows are NaN;
- a NaN row is an invalid frame. Invalid frames at the end change no other frame's output (the
  convolutions and local attention are causal, global attention, ECA pooling and cross-attention
  skip invalid frames), so the result equals the training path's F-frame padded input; the parity
  tests check it at every length.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.data.features import _EPS_SCALE
from aslfs_pl.model.layers import MASK_VALUE, Attention, ConvBlock
from aslfs_pl.model.seq2seq import Seq2Seq


def _const(value: float) -> Tensor:
    """A one-element float tensor: the converter compares tensors with tensors only."""
    return torch.tensor([value], dtype=torch.float32)


def _zero_nan(x: Tensor) -> Tensor:
    return torch.where(torch.isnan(x), torch.zeros_like(x), x)


def _sigmoid(x: Tensor) -> Tensor:
    return 0.5 * torch.tanh(0.5 * x) + 0.5  # sigmoid itself does not lower with a symbolic T


def _layer_norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
    mu = x.mean(-1, keepdim=True)
    xc = x - mu
    var = (xc * xc).mean(-1, keepdim=True)
    return xc * torch.rsqrt(var + norm.eps) * norm.weight + norm.bias


def _bn_scale_shift(bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm as ``x * scale + shift``."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _bias(allowed: Tensor) -> Tensor:
    """1 = may attend, 0 = masked -> additive score bias (softmax gives masked keys exactly 0)."""
    return (allowed - 1.0) * -MASK_VALUE


def _heads(attn: Attention) -> list[tuple[tuple[Tensor, Tensor], ...]]:
    """Per-head (weight, bias) of the q, k, v projections (k and v share ``attn.kv``)."""
    d, dh = attn.q.out_features, attn.head_dim
    out = []
    for h in range(attn.heads):
        rows = slice(h * dh, (h + 1) * dh)
        krows, vrows = slice(h * dh, (h + 1) * dh), slice(d + h * dh, d + (h + 1) * dh)
        out.append(
            (
                (attn.q.weight[rows], attn.q.bias[rows]),
                (attn.kv.weight[krows], attn.kv.bias[krows]),
                (attn.kv.weight[vrows], attn.kv.bias[vrows]),
            )
        )
    return out


def _project_kv(attn: Attention, x: Tensor) -> list[tuple[Tensor, Tensor]]:
    """Transposed keys (D/H, S) and values (S, D/H) of ``x`` (S, D), per head."""
    return [(F.linear(x, *k).t(), F.linear(x, *v)) for _, k, v in _heads(attn)]


def _attend(attn: Attention, x: Tensor, kv: list[tuple[Tensor, Tensor]], bias: Tensor | None):
    """Queries from ``x`` (L, D) over per-head keys/values; ``bias`` broadcasts to (L, S)."""
    scale = 1.0 / math.sqrt(attn.head_dim)
    outs = []
    for ((q_w, q_b), _, _), (k_t, v) in zip(_heads(attn), kv, strict=True):
        scores = F.linear(x, q_w * scale, q_b * scale) @ k_t  # (L, S)
        if bias is not None:
            scores = scores + bias
        outs.append(torch.softmax(scores, dim=-1) @ v)  # (L, D/H)
    return attn.out(torch.cat(outs, dim=-1))


def _channel_conv(conv: nn.Conv1d, x: Tensor) -> Tensor:
    """ECA's 1-channel, zero-padded, bias-free conv across the channels of ``x`` (1, H)."""
    k, h = conv.kernel_size[0], x.shape[1]
    zeros = torch.full((1, k // 2), 0.0)
    padded = torch.cat([zeros, x, zeros], 1)  # (1, H + k - 1)
    w = conv.weight[0, 0]
    out = padded[:, :h] * w[0]
    for i in range(1, k):
        out = out + padded[:, i : i + h] * w[i]
    return out


def _conv_block(block: ConvBlock, x: Tensor, valid: Tensor) -> Tensor:
    """:class:`ConvBlock` on (n, D) frames; ``valid`` (n, 1) float."""
    y = block.expand(x)
    y = y * _sigmoid(y)  # SiLU
    # causal depthwise conv with the batch norm folded into its weights
    conv = block.dwconv.conv
    scale, shift = _bn_scale_shift(block.norm)
    k = block.dwconv.kernel
    w = conv.weight * scale[:, None, None]  # (H, 1, k)
    b = conv.bias * scale + shift
    padded = torch.cat([torch.full((k - 1, y.shape[1]), 0.0), y], 0)  # (n + k - 1, H)
    y = F.conv1d(padded.t()[None], w, b, groups=w.shape[0])[0].t()  # (n, H)
    # ECA over valid frames: mean(y * m) / mean(m) = sum(y * m) / sum(m)
    pooled = (y * valid).mean(0, keepdim=True) / torch.maximum(
        valid.mean(0, keepdim=True), _const(1e-9)
    )  # (1, H)
    gate = _sigmoid(_channel_conv(block.eca.conv, pooled))  # (1, H)
    return x + block.project(y * gate)


class DynamicKaggleModel(nn.Module):
    """Kaggle's signature with a dynamic frame axis: ``inputs`` (T, C), any T >= 0, NaN allowed
    -> ``{"outputs": (max_target_len, vocab)}``, the same outputs as :class:`KaggleModel`.

    Args:
        net: the trained network (used as it is; its state_dict is this module's under ``net.``).
    """

    def __init__(self, net: Seq2Seq):
        super().__init__()
        self.net = net.eval()
        cfg = net.config
        self.max_frames = cfg.max_frames
        self.num_columns = cfg.num_columns
        self.num_axes = cfg.num_axes
        self.steps = cfg.max_target_len

    # -- preprocessing -------------------------------------------------------------------------
    def frames(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """(T, C) -> frames (n, C) with n = T + 1 (see module doc) and their indices (n,) float."""
        f = self.max_frames
        x = torch.cat([inputs, torch.full((1, self.num_columns), float("nan"))], 0)  # (n, C)
        j = torch.arange(x.shape[0]).to(torch.float32)  # (n,)
        t = 2.0 * j.mean(0, keepdim=True)  # (1,): T, from mean(0..T) = T / 2
        ff = _const(float(f))
        # fit_length's indices (i * T) // F, in float with a half-step guard (exact for T < 40000)
        resampled = ((j * t + 0.5) / ff).to(torch.int32).to(torch.float32)
        idx = torch.where(t > ff, torch.where(j < ff, resampled, t), j)  # row T is the NaN row
        return F.embedding(idx.to(torch.int32), x), j

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(n, C) raw -> features (n, 3C) in axis-major order per block, valid (n, 1) float.

        Same values as :func:`aslfs_pl.data.features.landmark_features` (whose blocks are
        point-major: x0, y0, x1, ...); :meth:`embed` reorders the dense layer's columns to match.
        """
        a, c = self.num_axes, self.num_columns
        p = c // a
        seen = (~torch.isnan(x)).to(torch.float32)  # (n, C)
        valid = (seen.mean(1, keepdim=True) > _const(0.0)).to(torch.float32)  # (n, 1)
        zero = _zero_nan(x)
        centred = []
        for i in range(a):  # per-axis mean of the visible points: mean(x) / mean(seen)
            cols = slice(i * p, (i + 1) * p)
            count = torch.maximum(seen[:, cols].mean(1, keepdim=True), _const(1.0 / p))
            centred.append(x[:, cols] - zero[:, cols].mean(1, keepdim=True) / count)
        centred = torch.cat(centred, 1)  # (n, C), NaN where unseen
        var = _zero_nan(centred * centred).mean(1, keepdim=True) / torch.maximum(
            seen.mean(1, keepdim=True), _const(1.0 / c)
        )
        flat = centred * torch.rsqrt(torch.maximum(var, _const(_EPS_SCALE**2)))
        n = flat.shape[0]
        nan = torch.full((2, c), float("nan"))
        d1 = flat - torch.cat([nan[:1], flat], 0)[:n]
        d2 = flat - torch.cat([nan, flat], 0)[:n]
        return _zero_nan(torch.cat([flat, d1, d2], 1)), valid

    # -- network -------------------------------------------------------------------------------
    def embed(self, feats: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        emb = self.net.embedding
        a, c = self.num_axes, self.num_columns
        # columns of the training feature order (point-major) taken in axis-major order
        weight = torch.cat(
            [
                emb.dense.weight[:, blk * c + i : (blk + 1) * c : a]
                for blk in range(3)
                for i in range(a)
            ],
            1,
        )
        scale, shift = _bn_scale_shift(emb.norm)
        x = F.linear(feats, weight * scale[:, None], shift)  # (n, D)
        for block in emb.convs:
            x = _conv_block(block, x, valid)
        pos = torch.minimum(j, _const(self.max_frames - 1.0)).to(torch.int32)
        return x + F.embedding(pos, emb.positions)  # rows >= F are invalid frames

    def encode(self, feats: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        enc = self.net.encoder
        x = self.embed(feats, valid, j)
        offset = j.unsqueeze(1) - j.unsqueeze(0)  # (n, n): query - key position
        is_self = ((offset > _const(-0.5)) & (offset < _const(0.5))).to(torch.float32)
        band = ((offset > _const(-0.5)) & (offset < _const(enc.window - 0.5))).to(torch.float32)
        key_valid = valid.t()  # (1, n)
        local = _bias(band * torch.maximum(key_valid, is_self))
        full = _bias(torch.maximum(key_valid, is_self))
        for blk in enc.blocks:
            for norm, attn in zip(blk.local_norms, blk.local_attn, strict=True):
                h = _layer_norm(norm, x)
                x = x + _attend(attn, h, _project_kv(attn, h), local)
            h = _layer_norm(blk.global_norm, x)
            x = x + _attend(blk.global_attn, h, _project_kv(blk.global_attn, h), full)
            x = x + blk.mlp(_layer_norm(blk.mlp_norm, x))
        return _layer_norm(enc.norm, x)

    def decode(self, memory: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        """Greedy, unrolled, KV cache; rows after the end token are a one-hot pad."""
        dec = self.net.decoder
        key_valid = valid.t()  # (1, n)
        any_valid = (key_valid.mean(1, keepdim=True) > _const(0.0)).to(torch.float32)
        first = (j < _const(0.5)).to(torch.float32).unsqueeze(0)  # (1, n)
        cross = _bias(torch.maximum(key_valid, first * (1.0 - any_valid)))  # see memory_mask
        cross_kv = [_project_kv(blk.cross_attn, memory) for blk in dec.blocks]
        cache: list[list[tuple[Tensor, Tensor]] | None] = [None] * len(dec.blocks)
        pad_row = F.one_hot(torch.tensor(vocab.PAD), dec.head.out_features).to(torch.float32)
        pad_row = (pad_row * 1e4).unsqueeze(0)  # (1, V)
        token = torch.tensor([vocab.SOS])
        done = torch.full((1, 1), 0.0)  # (torch.zeros lowers to an int32 fill)
        rows = []
        for t in range(self.steps):
            y = F.embedding(token, dec.embed.weight) + dec.positions[t]  # (1, D)
            for i, blk in enumerate(dec.blocks):
                h = _layer_norm(blk.self_norm, y)
                new = _project_kv(blk.self_attn, h)
                if cache[i] is not None:
                    new = [
                        (torch.cat([k0, k], 1), torch.cat([v0, v], 0))
                        for (k0, v0), (k, v) in zip(cache[i], new, strict=True)
                    ]
                cache[i] = new
                y = y + _attend(blk.self_attn, h, new, None)
                y = y + _attend(blk.cross_attn, _layer_norm(blk.cross_norm, y), cross_kv[i], cross)
                y = y + blk.mlp(_layer_norm(blk.mlp_norm, y))
            logits = dec.head(_layer_norm(dec.norm, y))  # (1, V)
            rows.append(torch.where(done > _const(0.5), pad_row, logits))
            best = torch.topk(logits, 1).indices[:, 0]  # (1,) argmax
            token = torch.where(done[:, 0] > _const(0.5), torch.tensor([vocab.PAD]), best)
            is_end = (token.to(torch.float32) - vocab.EOS).abs() < _const(0.5)
            done = torch.maximum(done, is_end.to(torch.float32).unsqueeze(1))
        return torch.cat(rows, 0)

    def forward(self, inputs: Tensor) -> dict[str, Tensor]:
        x, j = self.frames(inputs)
        feats, valid = self.features(x)
        memory = self.encode(feats, valid, j)
        return {"outputs": self.decode(memory, valid, j)}
