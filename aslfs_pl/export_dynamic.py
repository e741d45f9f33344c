"""The deployment graph with a dynamic frame axis: a 40-frame video costs 40 frames, not 384.

litert-torch lowers a symbolic frame count well only through its TFLite-native decompositions
(``litert_torch.backend.experimental.torch_tfl``: matmul, mean, softmax, where, gather, cat, slice,
comparisons of two tensors, elementwise arithmetic, gelu, rsqrt, topk) plus a few elementwise ops
and conv1d that its generic lowering handles (tanh, isnan, casts). LayerNorm, SiLU, sigmoid, masked_fill, sum,
argmax, F.pad and comparisons with a Python number do not lower with a symbolic T, so this module
computes the trained network's forward again with those ops only, on 2-D ``(frames, channels)``
tensors. The encoder runs one attention head at a time (splitting a frame-sized tensor into heads
by reshape lowers to run-time shape arithmetic, measured several times slower); the decoder's
one-token steps batch their heads.

Weights. The module holds the trained :class:`Seq2Seq`, so its state_dict is the network's
(``net.*`` keys; :meth:`DynamicKaggleModel.load_state_dict` takes a training state_dict). What the
graph multiplies by is derived from those parameters by :meth:`DynamicKaggleModel.refold` (at
construction and after every load) and kept as non-persistent buffers: BatchNorm folded into the
dense layer and the depthwise convolutions, each LayerNorm's scale and shift folded into the
layer that reads it, the attention score scale folded into the queries, per-head slices. Done
once, eagerly, so the traced graph holds only the per-frame computation (the converter does fold
such constant arithmetic too, but only after tracing and decomposing all of it for every unrolled
decoder step).

How the frame axis changes (T = input frames, F = ``max_frames``):
- one NaN row is appended, so the graph never sees 0 frames (T = 0 reads as one empty frame);
- n = T + 1 rows run through the model. When T > F the first F rows are the training resampling
  (``fit_length``'s indices) and the remaining T + 1 - F rows are NaN;
- a NaN row is an invalid frame. Invalid frames at the end change no other frame's output (the
  convolutions and local attention are causal, global attention, ECA pooling and cross-attention
  skip invalid frames), so the result equals the training path's F-frame padded input; the parity
  tests check it at every length.
Cost: a sequence of T <= F frames costs T + 1 frames; a longer one costs all its T + 1 rows (the
rows after F are invalid but still computed), and attention is quadratic in them: 807 frames (the
longest Kaggle sequence) run 808 rows, while very long inputs (tens of thousands of frames) exhaust
memory.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.data.features import _EPS_SCALE, zero_nan
from aslfs_pl.model.layers import MASK_VALUE, Attention
from aslfs_pl.model.seq2seq import Seq2Seq

Linear = tuple[Tensor, Tensor]  # (weight, bias)


def _const(value: float) -> Tensor:
    """A one-element float tensor: the converter compares tensors with tensors only."""
    return torch.tensor([value], dtype=torch.float32)


def _sigmoid(x: Tensor) -> Tensor:
    return 0.5 * torch.tanh(0.5 * x) + 0.5  # sigmoid itself does not lower with a symbolic T


def _normalise(x: Tensor, eps: float) -> Tensor:
    """LayerNorm without its scale and shift (folded into the layer that reads the output)."""
    xc = x - x.mean(-1, keepdim=True)
    return xc * torch.rsqrt((xc * xc).mean(-1, keepdim=True) + eps)


def _bias(allowed: Tensor) -> Tensor:
    """1 = may attend, 0 = masked -> additive score bias (softmax gives masked keys exactly 0)."""
    return (allowed - 1.0) * -MASK_VALUE


# -- weight folding (eager, from the trained parameters) -----------------------------------------
def _fold_norm(weight: Tensor, bias: Tensor, norm: nn.LayerNorm) -> Linear:
    """``linear(layer_norm(x))`` as a linear layer of ``_normalise(x)``."""
    return weight * norm.weight, bias + weight @ norm.bias


def _bn_scale_shift(bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm as ``x * scale + shift``."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _qkv(attn: Attention, norm: nn.LayerNorm, kv_norm: nn.LayerNorm | None = None):
    """Folded q (score scale included), k, v projections: three (weight, bias) of (D, D).

    ``kv_norm``: the LayerNorm in front of the keys/values when it differs from ``norm``
    (cross-attention reads the encoder's final norm).
    """
    d = attn.q.out_features
    scale = 1.0 / math.sqrt(attn.head_dim)
    q_w, q_b = _fold_norm(attn.q.weight, attn.q.bias, norm)
    kv_w, kv_b = _fold_norm(attn.kv.weight, attn.kv.bias, kv_norm or norm)
    return (q_w * scale, q_b * scale), (kv_w[:d], kv_b[:d]), (kv_w[d:], kv_b[d:])


def _split_heads(linear: Linear, heads: int) -> list[Linear]:
    w, b = linear
    dh = w.shape[0] // heads
    return [(w[h * dh : (h + 1) * dh], b[h * dh : (h + 1) * dh]) for h in range(heads)]


def _attention_layers(block: nn.Module) -> list[tuple[nn.LayerNorm, Attention]]:
    """An encoder block's (norm, attention) pairs: the local layers, then the global one."""
    local = list(zip(block.local_norms, block.local_attn, strict=True))
    return [*local, (block.global_norm, block.global_attn)]


class _Folded(nn.Module):
    """Non-persistent buffers named ``<key>_w`` / ``<key>_b``: the graph's weights."""

    def put(self, key: str, weight: Tensor, bias: Tensor | None = None) -> None:
        self.register_buffer(f"{key}_w", weight.detach().clone().contiguous(), persistent=False)
        if bias is not None:
            self.register_buffer(f"{key}_b", bias.detach().clone().contiguous(), persistent=False)

    def linear(self, key: str) -> Linear:
        return getattr(self, f"{key}_w"), getattr(self, f"{key}_b")


# -- the graph -----------------------------------------------------------------------------------
class DynamicKaggleModel(nn.Module):
    """Kaggle's signature with a dynamic frame axis: ``inputs`` (T, C), any T >= 0, NaN allowed
    -> ``{"outputs": (max_target_len, vocab)}``, the same outputs as :class:`KaggleModel`.

    The graph's weights are a snapshot of ``net`` taken by :meth:`refold` (see the module doc):
    load weights through :meth:`load_state_dict`, or call :meth:`refold` after changing ``net``'s
    parameters in place. CPU only (the export runs on the CPU).

    Args:
        net: the trained network (its state_dict is this module's under ``net.``).
    """

    def __init__(self, net: Seq2Seq):
        super().__init__()
        self.net = net.eval()
        cfg = net.config
        self.max_frames = cfg.max_frames
        self.num_columns = cfg.num_columns
        self.num_axes = cfg.num_axes
        self.heads, self.head_dim = cfg.heads, cfg.dim // cfg.heads
        self.steps = cfg.max_target_len
        pad = torch.zeros(1, cfg.vocab_size)
        pad[0, vocab.PAD] = 1e4
        self.register_buffer("pad_row", pad, persistent=False)
        earlier = torch.triu(torch.ones(self.steps, self.steps), diagonal=1)  # [s, t]: s < t
        self.register_buffer("earlier_steps", earlier, persistent=False)
        self.folded = _Folded()
        self.refold()

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.refold()
        return result

    @torch.no_grad()
    def refold(self) -> None:
        """Derive the graph's weights from the network's parameters (see the module doc)."""
        net, put = self.net, self.folded.put
        emb, a, c = net.embedding, self.num_axes, self.num_columns
        # dense columns of the training feature order (point-major) taken in axis-major order
        dense = torch.cat(
            [emb.dense.weight[:, b * c + i : (b + 1) * c : a] for b in range(3) for i in range(a)],
            1,
        )
        scale, shift = _bn_scale_shift(emb.norm)
        put("embed", dense * scale[:, None], shift)
        self.eca_taps = []
        for i, block in enumerate(emb.convs):
            scale, shift = _bn_scale_shift(block.norm)
            conv = block.dwconv.conv
            put(f"conv{i}", conv.weight * scale[:, None, None], conv.bias * scale + shift)
            self.eca_taps.append([float(v) for v in block.eca.conv.weight[0, 0]])
        for b, blk in enumerate(net.encoder.blocks):
            for i, (norm, attn) in enumerate(_attention_layers(blk)):
                for name, lin in zip("qkv", _qkv(attn, norm), strict=True):
                    for h, head in enumerate(_split_heads(lin, self.heads)):
                        put(f"enc{b}_{i}_{name}{h}", *head)
            put(f"enc{b}_fc1", *_fold_norm(blk.mlp.fc1.weight, blk.mlp.fc1.bias, blk.mlp_norm))
        dec = net.decoder
        for b, blk in enumerate(dec.blocks):
            for name, lin in zip("qkv", _qkv(blk.self_attn, blk.self_norm), strict=True):
                put(f"dec{b}_self_{name}", *lin)
            cross = _qkv(blk.cross_attn, blk.cross_norm, kv_norm=net.encoder.norm)
            for name, lin in zip("qkv", cross, strict=True):
                put(f"dec{b}_cross_{name}", *lin)
            put(f"dec{b}_fc1", *_fold_norm(blk.mlp.fc1.weight, blk.mlp.fc1.bias, blk.mlp_norm))
        put("head", *_fold_norm(dec.head.weight, dec.head.bias, dec.norm))

    # -- preprocessing -------------------------------------------------------------------------
    def frames(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """(T, C) -> frames (n, C) with n = T + 1 (see module doc) and their indices (n,) float."""
        f = self.max_frames
        x = torch.cat([inputs, torch.full((1, self.num_columns), float("nan"))], 0)  # (n, C)
        j = torch.arange(x.shape[0]).to(torch.float32)  # (n,)
        t = j[-1:]  # (1,): T, exactly (TFLite's MEAN of 0..T gave 119.99999 for 120)
        ff = _const(float(f))
        # fit_length's indices (i * T) // F, in float32 with a half-step guard: exact while
        # i * T + 0.5 < 2^23, i.e. T < 21,845 at F = 384 (Kaggle's longest sequence: 807)
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
        zero = zero_nan(x)
        centred = []
        for i in range(a):  # per-axis mean of the visible points: mean(x) / mean(seen)
            cols = slice(i * p, (i + 1) * p)
            count = torch.maximum(seen[:, cols].mean(1, keepdim=True), _const(1.0 / p))
            centred.append(x[:, cols] - zero[:, cols].mean(1, keepdim=True) / count)
        centred = torch.cat(centred, 1)  # (n, C), NaN where unseen
        var = zero_nan(centred * centred).mean(1, keepdim=True) / torch.maximum(
            seen.mean(1, keepdim=True), _const(1.0 / c)
        )
        flat = centred * torch.rsqrt(torch.maximum(var, _const(_EPS_SCALE**2)))
        n = flat.shape[0]
        nan = torch.full((2, c), float("nan"))
        d1 = flat - torch.cat([nan[:1], flat], 0)[:n]
        d2 = flat - torch.cat([nan, flat], 0)[:n]
        return zero_nan(torch.cat([flat, d1, d2], 1)), valid

    # -- network -------------------------------------------------------------------------------
    def embed(self, feats: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        """Dense + BN, conv blocks, positions: (n, 3C) -> (n, D)."""
        emb = self.net.embedding
        x = F.linear(feats, *self.folded.linear("embed"))  # (n, D)
        for i, block in enumerate(emb.convs):
            x = self.conv_block(i, block, x, valid)
        pos = torch.minimum(j, _const(self.max_frames - 1.0)).to(torch.int32)
        return x + F.embedding(pos, emb.positions)  # rows >= F are invalid frames

    def conv_block(self, i: int, block: nn.Module, x: Tensor, valid: Tensor) -> Tensor:
        """:class:`aslfs_pl.model.layers.ConvBlock` on (n, D) frames; ``valid`` (n, 1) float."""
        y = block.expand(x)
        y = y * _sigmoid(y)  # SiLU
        w, b = self.folded.linear(f"conv{i}")  # causal depthwise conv, batch norm folded in
        padded = torch.cat([torch.full((w.shape[2] - 1, y.shape[1]), 0.0), y], 0)
        y = F.conv1d(padded.t()[None], w, b, groups=w.shape[0])[0].t()  # (n, H)
        # ECA over valid frames: mean(y * m) / mean(m) = sum(y * m) / sum(m)
        pooled = (y * valid).mean(0, keepdim=True) / torch.maximum(
            valid.mean(0, keepdim=True), _const(1e-9)
        )  # (1, H)
        taps = self.eca_taps[i]  # zero-padded conv across the channels, as shifted slices
        k, h = len(taps), pooled.shape[1]
        zeros = torch.full((1, k // 2), 0.0)
        padded = torch.cat([zeros, pooled, zeros], 1)  # (1, H + k - 1)
        gate = padded[:, :h] * taps[0]
        for t in range(1, k):
            gate = gate + padded[:, t : t + h] * taps[t]
        return x + block.project(y * _sigmoid(gate))

    def self_attention(self, key: str, attn: Attention, eps: float, x: Tensor, bias: Tensor):
        """Pre-norm self-attention over (n, D) frames, one head at a time; ``bias`` (n, n).

        Per-head 2-D matmuls: reshaping a frame-sized tensor into heads lowers to run-time shape
        computations that are several times slower than these small matmuls.
        """
        xn = _normalise(x, eps)
        outs = []
        for h in range(self.heads):
            q, k, v = (self.folded.linear(f"{key}_{name}{h}") for name in "qkv")
            scores = F.linear(xn, *q) @ F.linear(xn, *k).t() + bias  # (n, n)
            outs.append(torch.softmax(scores, dim=-1) @ F.linear(xn, *v))  # (n, D/H)
        return attn.out(torch.cat(outs, dim=-1))

    def mlp(self, key: str, mlp: nn.Module, eps: float, x: Tensor) -> Tensor:
        return mlp.fc2(F.gelu(F.linear(_normalise(x, eps), *self.folded.linear(key))))

    def encode(self, feats: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        """(n, 3C) features -> (n, D) encoder output before its final LayerNorm (whose affine
        is folded into the decoder's cross-attention keys/values)."""
        enc = self.net.encoder
        x = self.embed(feats, valid, j)
        offset = j.unsqueeze(1) - j.unsqueeze(0)  # (n, n): query - key position
        is_self = ((offset > _const(-0.5)) & (offset < _const(0.5))).to(torch.float32)
        band = ((offset > _const(-0.5)) & (offset < _const(enc.window - 0.5))).to(torch.float32)
        key_valid = valid.t()  # (1, n)
        local = _bias(band * torch.maximum(key_valid, is_self))
        full = _bias(torch.maximum(key_valid, is_self))
        for b, blk in enumerate(enc.blocks):
            layers = _attention_layers(blk)
            for i, (norm, attn) in enumerate(layers):
                bias = full if i == len(layers) - 1 else local
                x = x + self.self_attention(f"enc{b}_{i}", attn, norm.eps, x, bias)
            x = x + self.mlp(f"enc{b}_fc1", blk.mlp, blk.mlp_norm.eps, x)
        return x

    def attend_one(self, key: str, attn: Attention, xn: Tensor, k_t: Tensor, v: Tensor, bias):
        """One normalised query ``xn`` (1, D) over keys (H, D/H, S) and values (H, S, D/H).

        The decoder's unrolled steps use this head-batched form: a step's query has a static
        shape, so the head split is a free reshape and the graph holds a quarter of the ops.
        """
        h, dh = self.heads, self.head_dim
        q = F.linear(xn, *self.folded.linear(f"{key}_q")).reshape(h, 1, dh)
        scores = torch.bmm(q, k_t)  # (H, 1, S)
        if bias is not None:
            scores = scores + bias
        y = torch.bmm(torch.softmax(scores, dim=-1), v)  # (H, 1, D/H)
        return attn.out(y.reshape(1, h * dh))

    def decode(self, encoded: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        """Greedy, unrolled, KV cache; rows after the end token are a one-hot pad.

        ``encoded``: the encoder's output before its final LayerNorm.
        """
        dec, h, dh = self.net.decoder, self.heads, self.head_dim
        key_valid = valid.t()  # (1, n)
        any_valid = (key_valid.mean(1, keepdim=True) > _const(0.0)).to(torch.float32)
        first = (j < _const(0.5)).to(torch.float32).unsqueeze(0)  # (1, n)
        cross = _bias(torch.maximum(key_valid, first * (1.0 - any_valid)))  # see memory_mask
        memory = _normalise(encoded, self.net.encoder.norm.eps)
        n = memory.shape[0]
        cross_kv = [
            (
                F.linear(memory, *self.folded.linear(f"dec{b}_cross_k")).reshape(n, h, dh)
                .permute(1, 2, 0),  # (H, D/H, n)
                F.linear(memory, *self.folded.linear(f"dec{b}_cross_v")).reshape(n, h, dh)
                .permute(1, 0, 2),  # (H, n, D/H)
            )
            for b in range(len(dec.blocks))
        ]  # fmt: skip
        cache: list[tuple[Tensor, Tensor] | None] = [None] * len(dec.blocks)
        token = torch.tensor([vocab.SOS])
        rows, tokens = [], []
        for t in range(self.steps):
            y = F.embedding(token, dec.embed.weight) + dec.positions[t]  # (1, D)
            for b, blk in enumerate(dec.blocks):
                xn = _normalise(y, blk.self_norm.eps)
                k_t = F.linear(xn, *self.folded.linear(f"dec{b}_self_k")).reshape(h, dh, 1)
                v = F.linear(xn, *self.folded.linear(f"dec{b}_self_v")).reshape(h, 1, dh)
                if cache[b] is not None:
                    k_t, v = torch.cat([cache[b][0], k_t], 2), torch.cat([cache[b][1], v], 1)
                cache[b] = (k_t, v)
                y = y + self.attend_one(f"dec{b}_self", blk.self_attn, xn, k_t, v, None)
                xn = _normalise(y, blk.cross_norm.eps)
                y = y + self.attend_one(f"dec{b}_cross", blk.cross_attn, xn, *cross_kv[b], cross)
                y = y + self.mlp(f"dec{b}_fc1", blk.mlp, blk.mlp_norm.eps, y)
            rows.append(F.linear(_normalise(y, dec.norm.eps), *self.folded.linear("head")))
            # The next input is this step's argmax. Unlike Decoder.greedy it is not replaced by
            # pad after the end token: only rows before the end are kept, and those never see a
            # later token (causal), so the outputs are the same.
            token = torch.topk(rows[-1], 1).indices[:, 0]  # (1,)
            tokens.append(token)
        logits = torch.cat(rows, 0)  # (L, V)
        is_end = (torch.cat(tokens).to(torch.float32) - vocab.EOS).abs() < _const(0.5)  # (L,)
        # ended[t]: an end token at a step s < t (row vector times a strictly upper-triangular
        # matrix; the constant on the right keeps it a float x weight matmul for quantisers)
        ended = is_end.to(torch.float32).unsqueeze(0) @ self.earlier_steps > _const(0.5)  # (1, L)
        return torch.where(ended.t(), self.pad_row, logits)

    def forward(self, inputs: Tensor) -> dict[str, Tensor]:
        x, j = self.frames(inputs)
        feats, valid = self.features(x)
        encoded = self.encode(feats, valid, j)
        return {"outputs": self.decode(encoded, valid, j)}
