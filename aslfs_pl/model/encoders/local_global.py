"""The local/global encoder (the seed's): blocks of local causal and global self-attention.

Each block: ``local_layers`` local causal self-attention layers (a frame sees the ``window``
frames up to itself), one global self-attention layer, an MLP; pre-norm. Frame count is unchanged
throughout: (B, T, D) embedded frames -> (B, T, D) encoded frames.
Each layer's deployment twin (``*Export``, see :mod:`aslfs_pl.export_ops`) follows it; the
twins run on (n, D) frames of one sequence, n symbolic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aslfs_pl.export_ops import ExportForm, const, export_form, normalise
from aslfs_pl.model.encoders.base import Encoder, register
from aslfs_pl.model.layers import (
    MLP,
    Attention,
    RotaryExport,
    Rotation,
    attention,
    attention_bias,
    global_mask,
    rotary_tables,
    rotate,
)
from aslfs_pl.model.regularisation import Dropout, DropPath

if TYPE_CHECKING:
    from aslfs_pl.model.config import ModelConfig


@dataclass
class LocalGlobalSettings:
    """The local/global encoder's settings (``model.encoder_conf``)."""

    local_layers: int = 3
    """Local causal self-attention layers per block."""
    window: int = 16
    """Frames a local attention layer looks back over (including the current one)."""

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"model.encoder_conf.window {self.window} must be >= 1")
        if self.local_layers < 0:
            raise ValueError(f"model.encoder_conf.local_layers {self.local_layers} must be >= 0")


def local_causal_mask(valid: Tensor, window: int) -> Tensor:
    """(B, T) valid frames -> (B, 1, T, T): frame i sees valid frames i-window+1..i, and itself."""
    t = valid.shape[-1]
    i = torch.arange(t, device=valid.device)
    offset = i.unsqueeze(1) - i.unsqueeze(0)  # (T, T): query - key
    band = (offset >= 0) & (offset < window)
    return (band & valid[:, None, None, :]) | (offset == 0)


def local_attention(
    attn: Attention, x: Tensor, valid: Tensor, window: int, rotation: Rotation = None
) -> Tensor:
    """Local causal self-attention computed in chunks: O(T * 2W) instead of O(T^2).

    Same result as ``attn(x, x, local_causal_mask(valid, window))``: frames are cut into chunks
    of ``window``; the queries of chunk i attend to the keys of chunks i-1 and i (every key a
    query may see lies there) under the same band / validity / self mask.

    Args:
        attn: the layer (its projections are used as they are).
        x: (B, T, D) normalised input.
        valid: (B, T) frame mask.
        window: frames a query sees, itself included.
        rotation: rotary tables of at least T rounded up to whole windows frames: queries and
            keys are rotated by their frame (:func:`~aslfs_pl.model.layers.rotate`).

    Returns:
        (B, T, D).
    """
    b, t, d = x.shape
    w, h, dh = window, attn.heads, attn.head_dim
    n = -(-t // w)  # chunks
    if n * w != t:  # pad the frame axis to whole chunks (padding frames are invalid keys)
        x = F.pad(x, (0, 0, 0, n * w - t))
        valid = F.pad(valid, (0, n * w - t), value=False)
    q, (k, v) = attn.q(x).view(b, n * w, h, dh), attn.kv(x).view(b, n * w, 2, h, dh).unbind(2)
    if rotation is not None:  # tables (frames, dh), here over (B, frames, H, dh)
        rotation = (rotation[0][: n * w, None], rotation[1][: n * w, None])
        q, k = rotate(q, rotation), rotate(k, rotation)

    def chunks(z: Tensor) -> Tensor:  # (B, nW, H, dh) -> (B n, H, W, dh)
        return z.view(b, n, w, h, dh).transpose(2, 3).flatten(0, 1)

    def previous(z: Tensor) -> Tensor:  # (B, n, W, ...): each chunk's predecessor (zeros first)
        return torch.cat([torch.zeros_like(z[:, :1]), z[:, :-1]], 1)

    def with_previous(z: Tensor) -> Tensor:  # (B, nW, H, dh) -> (B n, H, 2W, dh)
        z = z.view(b, n, w, h, dh)
        return torch.cat([previous(z), z], 2).transpose(2, 3).flatten(0, 1)

    i = torch.arange(w, device=x.device)
    j = torch.arange(2 * w, device=x.device)
    offset = (i.unsqueeze(1) + w) - j.unsqueeze(0)  # (W, 2W): query - key position
    band = (offset >= 0) & (offset < w)
    chunked = valid.view(b, n, w)
    key_valid = torch.cat([previous(chunked), chunked], 2)  # (B, n, 2W)
    mask = (band & key_valid.unsqueeze(2)) | (offset == 0)  # (B, n, W, 2W)
    y = attention(
        chunks(q), with_previous(k), with_previous(v), mask.flatten(0, 1).unsqueeze(1),
        attn.weight_dropout(),
    )  # (B n, H, W, dh)  # fmt: skip
    y = y.view(b, n, h, w, dh).transpose(2, 3).reshape(b, n * w, d)[:, :t]  # (B, T, D)
    return attn.out(y)


class EncoderBlock(nn.Module):
    """``local_layers`` local causal self-attention layers, one global one, then an MLP.

    Pre-norm: each sub-layer is ``x + f(LayerNorm(x))``; ``drop_path`` drops whole sub-layers
    per sequence in training (:class:`DropPath`).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: int,
        local_layers: int,
        dropout: float,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.local_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(local_layers))
        self.local_attn = nn.ModuleList(Attention(dim, heads, dropout) for _ in range(local_layers))
        self.global_norm = nn.LayerNorm(dim)
        self.global_attn = Attention(dim, heads, dropout)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio, dropout)
        self.dropout = Dropout(dropout)
        self.drop_path = DropPath(drop_path)

    def forward(
        self, x: Tensor, valid: Tensor, window: int, full_mask: Tensor, rotation: Rotation = None
    ) -> Tensor:
        """``rotation``: rotary tables of the frames rounded up to whole windows (built once per
        forward, see :class:`LocalGlobalEncoder`), or None (no rotary embeddings)."""
        for norm, attn in zip(self.local_norms, self.local_attn, strict=True):
            y = local_attention(attn, norm(x), valid, window, rotation)
            x = x + self.drop_path(self.dropout(y))
        h = self.global_norm(x)
        if rotation is not None:
            rotation = (rotation[0][: x.shape[1]], rotation[1][: x.shape[1]])
        x = x + self.drop_path(self.dropout(self.global_attn(h, h, full_mask, rotation)))
        return x + self.drop_path(self.mlp(self.mlp_norm(x)))

    def export_form(self, rotary: bool = False) -> EncoderBlockExport:
        return EncoderBlockExport(self, rotary)


class EncoderBlockExport(ExportForm):
    """:class:`EncoderBlock` on (n, D) frames, given the additive local and global score biases."""

    def __init__(self, block: EncoderBlock, rotary: bool):
        super().__init__()
        pairs = zip(block.local_norms, block.local_attn, strict=True)
        self.local = nn.ModuleList(
            export_form(a, norm, heads_apart=True, rotary=rotary) for norm, a in pairs
        )
        self.glob = export_form(
            block.global_attn, block.global_norm, heads_apart=True, rotary=rotary
        )
        self.mlp = export_form(block.mlp, block.mlp_norm)

    def forward(
        self, x: Tensor, local_bias: Tensor, global_bias: Tensor, rotation: Rotation = None
    ) -> Tensor:
        for attn in self.local:
            x = x + attn.over_frames(attn.normalise(x), local_bias, rotation)
        x = x + self.glob.over_frames(self.glob.normalise(x), global_bias, rotation)
        return x + self.mlp(x)


@register
class LocalGlobalEncoder(Encoder):
    """Stack of :class:`EncoderBlock` with a final layer norm: (B, T, D) -> (B, T, D).

    The drop path rate grows linearly with depth, to ``model.drop_path`` in the last block.
    ``model.rotary``: every self-attention layer rotates its queries and keys by their frame
    (tables for up to ``max_frames`` frames in the export). ``seed`` is its name in the configs
    and checkpoints of older versions.
    """

    name = "local_global"
    aliases = ("seed",)
    Settings = LocalGlobalSettings
    legacy = {"local_layers": "local_layers", "window": "window"}

    def __init__(self, config: ModelConfig):
        super().__init__()
        c, s = config, config.encoder_settings
        self.window, self.rotary, self.max_frames = s.window, c.rotary, c.max_frames
        n = c.encoder_blocks
        self.blocks = nn.ModuleList(
            EncoderBlock(
                c.dim, c.heads, c.mlp_ratio, s.local_layers, c.dropout, c.drop_path * (i + 1) / n
            )
            for i in range(n)
        )
        self.norm = nn.LayerNorm(c.dim)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        full_mask = global_mask(valid)
        rotation = None
        if self.rotary:
            head_dim = self.blocks[0].global_attn.head_dim
            frames = -(-x.shape[1] // self.window) * self.window  # whole local windows
            rotation = rotary_tables(frames, head_dim, x.device)
        for block in self.blocks:
            x = block(x, valid, self.window, full_mask, rotation)
        return self.norm(x)

    def export_form(self) -> LocalGlobalEncoderExport:
        return LocalGlobalEncoderExport(self)


class LocalGlobalEncoderExport(ExportForm):
    """:class:`LocalGlobalEncoder` on (n, D) frames -> (n, D) normalised WITHOUT the final norm's affine
    (the decoder's cross-attention folds it into its keys and values)."""

    def __init__(self, enc: LocalGlobalEncoder):
        super().__init__()
        self.blocks = nn.ModuleList(export_form(block, enc.rotary) for block in enc.blocks)
        head_dim = enc.blocks[0].global_attn.head_dim
        self.rotary = RotaryExport(head_dim, enc.max_frames) if enc.rotary else None
        self.put("eps", const(enc.norm.eps))
        self.put("window", const(enc.window - 0.5))
        self.put("half_step", const(0.5))
        self.put("minus_half", const(-0.5))

    def forward(self, x: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        """``valid`` (n, 1) float, ``j`` (n,) frame indices as float."""
        offset = j.unsqueeze(1) - j.unsqueeze(0)  # (n, n): query - key position
        after = offset > self.minus_half
        is_self = (after & (offset < self.half_step)).to(torch.float32)
        band = (after & (offset < self.window)).to(torch.float32)
        seen = torch.maximum(valid.t(), is_self)  # valid keys, and each frame itself
        local, full = attention_bias(band * seen), attention_bias(seen)
        rotation = self.rotary(j) if self.rotary is not None else None
        for block in self.blocks:
            x = block(x, local, full, rotation)
        return normalise(x, self.eps)
