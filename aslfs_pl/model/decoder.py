"""Character decoder: teacher-forced forward for training, and the steps of its greedy loop and
beam search with a KV cache (the loops: :mod:`aslfs_pl.model.search`; its blocks:
:mod:`aslfs_pl.model.decoder_block`).

Each layer's deployment twin (``*Export``, see :mod:`aslfs_pl.export_ops`) follows it: the
decoder's steps for one sequence, unrolled for a fixed number of steps, with a KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aslfs_pl.export_ops import ExportForm, const, export_form, linear, normalise
from aslfs_pl.model.decoder_block import DecoderBlock, memory_mask
from aslfs_pl.model.layers import (
    Rotation,
    attention_bias,
    rotary_tables,
    sinusoidal_positions,
)
from aslfs_pl.model.search import ExportSearch, Search


class Decoder(Search, nn.Module):
    """(B, L) tokens + (B, T, D) frames -> (B, L, V) logits.

    ``rotary``: rotary position embeddings in every self-attention layer instead of the
    sinusoidal positions added to the token embeddings (cross-attention has none: a phrase
    position and a frame share no axis). ``mlp_hidden``: the MLPs' hidden width (0: ``mlp_ratio``
    x ``dim``).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: int,
        blocks: int,
        vocab_size: int,
        max_target_len: int,
        dropout: float,
        rotary: bool = False,
        mlp_hidden: int = 0,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.register_buffer(
            "positions", sinusoidal_positions(max_target_len, dim), persistent=False
        )
        self.rotary = rotary
        if rotary:
            cos, sin = rotary_tables(max_target_len, dim // heads)
            self.register_buffer("rotary_cos", cos, persistent=False)
            self.register_buffer("rotary_sin", sin, persistent=False)
        self.blocks = nn.ModuleList(
            DecoderBlock(dim, heads, mlp_ratio, dropout, mlp_hidden) for _ in range(blocks)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)
        self.max_target_len = max_target_len

    def inputs(self, tokens: Tensor, start: int = 0) -> tuple[Tensor, Rotation]:
        """Tokens (B, L) at positions ``start`` .. ``start + L - 1`` -> the first block's input
        (B, L, D) and the positions' rotary tables (None without rotary)."""
        positions = slice(start, start + tokens.shape[1])
        if self.rotary:
            return self.embed(tokens), (self.rotary_cos[positions], self.rotary_sin[positions])
        return self.embed(tokens) + self.positions[positions], None

    def forward(self, tokens: Tensor, memory: Tensor, valid: Tensor) -> Tensor:
        """Teacher forcing: position t sees tokens 0..t only."""
        y, rotation = self.inputs(tokens)
        i = torch.arange(tokens.shape[1], device=tokens.device)
        causal = i.unsqueeze(1) >= i.unsqueeze(0)  # (L, L)
        cross = memory_mask(valid)
        for block in self.blocks:
            kv = block.cross_attn.project_kv(memory)
            y, _ = block(y, causal, kv, cross, rotation=rotation)
        return self.head(self.norm(y))

    def start(self, memory: Tensor, valid: Tensor) -> Steps:
        """The search's state over ``memory`` (R, T, D): the cross-attention keys/values and
        mask, and an empty self-attention cache."""
        kv = [blk.cross_attn.project_kv(memory) for blk in self.blocks]
        return Steps(memory_mask(valid), kv, [None] * len(self.blocks))

    def step(self, state: Steps, token: Tensor, t: int) -> Tensor:
        """Step ``t`` of R rows: their tokens (R,) -> logits (R, V); the cache grows by one."""
        y, rotation = self.inputs(token.unsqueeze(1), t)  # (R, 1, D)
        for j, block in enumerate(self.blocks):
            y, state.cache[j] = block(y, None, state.kv[j], state.cross, state.cache[j], rotation)
        return self.head(self.norm(y))[:, 0]

    def reorder(self, state: Steps, rows: Tensor) -> None:
        """Keep the cache of ``rows`` (R,), in that order (the beam's surviving hypotheses)."""
        state.cache = [(k[rows], v[rows]) for k, v in state.cache]

    def export_form(
        self, memory_norm: nn.LayerNorm, beam_width: int = 0, length_penalty: float = 0.0
    ) -> DecoderExport:
        return DecoderExport(self, memory_norm, beam_width, length_penalty)


@dataclass
class ExportSteps:
    """:meth:`DecoderExport.cross`'s search state."""

    kv: list  # each block's cross-attention keys and values
    bias: Tensor  # (1, n) cross-attention score bias
    cache: list  # each block's self-attention keys and values so far


@dataclass
class Steps:
    """:meth:`Decoder.start`'s search state (:mod:`aslfs_pl.model.search`)."""

    cross: Tensor  # (R, 1, 1, T) cross-attention mask
    kv: list  # each block's cross-attention keys and values
    cache: list  # each block's self-attention keys and values so far (None before step 0)


class DecoderExport(ExportSearch, ExportForm):
    """:class:`Decoder` for one sequence, its searches unrolled for ``max_target_len`` steps
    (:class:`~aslfs_pl.model.search.ExportSearch`).

    ``forward(memory, valid, j)``: encoded frames (n, D) normalised without ``memory_norm``'s
    affine, ``valid`` (n, 1) float, ``j`` (n,) frame indices as float -> the greedy loop's
    logits (L, V), rows after the end token a one-hot pad (Kaggle's argmax decoding drops
    them). :meth:`greedy`, :meth:`beam` (built with ``beam_width``) and
    :meth:`teacher_forced` are what the other decodings read.
    """

    def __init__(
        self,
        dec: Decoder,
        memory_norm: nn.LayerNorm,
        beam_width: int = 0,
        length_penalty: float = 0.0,
    ):
        super().__init__()
        self.put_search(dec.max_target_len, dec.head.out_features, beam_width, length_penalty)
        self.rotary = dec.rotary
        self.blocks = nn.ModuleList(export_form(b, memory_norm, dec.rotary) for b in dec.blocks)
        self.put("embed", dec.embed.weight)
        self.put("positions", dec.positions)
        self.put_linear("head", dec.head, dec.norm)
        self.put("eps", const(dec.norm.eps))
        self.covers(dec.positions, dec.embed)
        if dec.rotary:
            self.put("rotary_cos", dec.rotary_cos)
            self.put("rotary_sin", dec.rotary_sin)
            self.covers(dec.rotary_cos, dec.rotary_sin)
        self.put("zero", const(0.0))

    def step_input(self, token: Tensor, t: int) -> tuple[Tensor, Rotation]:
        """Step ``t``'s tokens (R,) -> the first block's input (R, D) and the step's rotary
        tables (1, 1, D/H) (None without rotary): ``t`` is static in the unrolled loop, so both
        are slices of constants."""
        y = F.embedding(token, self.embed)
        if self.rotary:
            return y, (self.rotary_cos[t : t + 1, None], self.rotary_sin[t : t + 1, None])
        return y + self.positions[t], None

    def cross(self, memory: Tensor, valid: Tensor, j: Tensor) -> ExportSteps:
        """The search state of ``memory``: each block's cross-attention keys/values, the (1, n)
        score bias, an empty cache (one search per state)."""
        # cross-attention mask of memory_mask(): valid frames; frame 0 when none is valid
        key_valid = valid.t()  # (1, n)
        none_valid = 1.0 - (key_valid.mean(1, keepdim=True) > self.zero).to(torch.float32)
        first = (j < self.half_step).to(torch.float32).unsqueeze(0)  # (1, n)
        cross_bias = attention_bias(torch.maximum(key_valid, first * none_valid))
        kv = [b.cross_attn.keys_values(memory) for b in self.blocks]
        return ExportSteps(kv, cross_bias, [None] * len(self.blocks))

    def step(self, state: ExportSteps, token: Tensor, t: int, self_bias: Tensor | None) -> Tensor:
        """Step ``t`` of R rows (tokens (R,)) -> logits (R, V); ``self_bias`` (R, S): which
        cached keys each row may see (None: all, R = 1)."""
        y, rotation = self.step_input(token, t)  # (R, D)
        for b, block in enumerate(self.blocks):
            y, state.cache[b] = block.step(
                y, state.cache[b], state.kv[b], state.bias, self_bias, rotation
            )
        return linear(normalise(y, self.eps), self.weights("head"))

    def forward(self, memory: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        return self.greedy_rows(self.cross(memory, valid, j))

    def teacher_forced(
        self, inputs: Tensor, positions: Tensor, self_bias: Tensor, cross: ExportSteps
    ) -> Tensor:
        """Logits (R, V) of known phrases, all positions at once (:meth:`Decoder.forward`).

        Args:
            inputs: (R,) int token inputs; several phrases may be stacked.
            positions: (R,) int position of each input in its phrase.
            self_bias: (R, R) self-attention score bias (causal within each phrase).
            cross: :meth:`cross` of the frames (its cache is not read).
        """
        y, rotation = F.embedding(inputs, self.embed), None  # (R, D)
        if self.rotary:
            rotation = (
                F.embedding(positions, self.rotary_cos).unsqueeze(1),  # (R, 1, D/H)
                F.embedding(positions, self.rotary_sin).unsqueeze(1),
            )
        else:
            y = y + F.embedding(positions, self.positions)
        for b, block in enumerate(self.blocks):
            y = block.rows(y, self_bias, cross.kv[b], cross.bias, rotation)
        return linear(normalise(y, self.eps), self.weights("head"))
