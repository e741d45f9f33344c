"""Character decoder: teacher-forced forward for training, greedy decoding and beam search with a
KV cache (its blocks: :mod:`aslfs_pl.model.decoder_block`).

Each layer's deployment twin (``*Export``, see :mod:`aslfs_pl.export_ops`) follows it: the
greedy decoder unrolled for a fixed number of steps, one sequence, with a KV cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.export_ops import ExportForm, const, export_form, linear, normalise
from aslfs_pl.model.decoder_block import DecoderBlock, memory_mask
from aslfs_pl.model.layers import (
    MASK_VALUE,
    Rotation,
    attention_bias,
    rotary_tables,
    sinusoidal_positions,
)


class Decoder(nn.Module):
    """(B, L) tokens + (B, T, D) frames -> (B, L, V) logits.

    ``rotary``: rotary position embeddings in every self-attention layer instead of the
    sinusoidal positions added to the token embeddings (cross-attention has none: a phrase
    position and a frame share no axis).
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
            DecoderBlock(dim, heads, mlp_ratio, dropout) for _ in range(blocks)
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

    def greedy(
        self, memory: Tensor, valid: Tensor, steps: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Greedy decoding with a self-attention KV cache, ``steps`` tokens (a fixed count).

        Every step emits a token; after the end token a row emits pad, so a whole row decodes to
        the phrase.

        Returns:
            tokens (B, steps) int64 and logits (B, steps, V).
        """
        steps = steps or self.max_target_len
        b = memory.shape[0]
        cross = memory_mask(valid)
        cross_kv = [blk.cross_attn.project_kv(memory) for blk in self.blocks]
        cache: list[tuple[Tensor, Tensor] | None] = [None] * len(self.blocks)
        token = torch.full((b,), vocab.SOS, dtype=torch.long, device=memory.device)
        done = torch.zeros(b, dtype=torch.bool, device=memory.device)
        pad = torch.full_like(token, vocab.PAD)
        out_tokens, out_logits = [], []
        for t in range(steps):
            y, rotation = self.inputs(token.unsqueeze(1), t)  # (B, 1, D)
            for j, block in enumerate(self.blocks):
                y, cache[j] = block(y, None, cross_kv[j], cross, cache[j], rotation)
            logits = self.head(self.norm(y))[:, 0]  # (B, V)
            token = torch.where(done, pad, logits.argmax(-1))
            done = done | (token == vocab.EOS)
            out_tokens.append(token)
            out_logits.append(logits)
        return torch.stack(out_tokens, 1), torch.stack(out_logits, 1)

    def beam(
        self,
        memory: Tensor,
        valid: Tensor,
        width: int,
        steps: int | None = None,
        length_penalty: float = 0.0,
    ) -> tuple[Tensor, Tensor]:
        """Beam search with the KV cache: at each of ``steps`` steps every hypothesis is
        extended by every token and the ``width`` best by score are kept (:func:`best_first`:
        of equal scores, the earlier hypothesis, then the lower token); the score is the
        summed log-probability plus ``length_penalty`` per token emitted (end token included).
        A hypothesis that has emitted the end token is only extended by pad, at no cost.

        Returns:
            tokens (B, width, steps) int64 (as :meth:`greedy`'s rows) and their summed
            log-probabilities (B, width), best first.
        """
        steps = steps or self.max_target_len
        b, k, v = memory.shape[0], width, self.head.out_features
        memory, valid = memory.repeat_interleave(k, 0), valid.repeat_interleave(k, 0)
        cross = memory_mask(valid)
        cross_kv = [blk.cross_attn.project_kv(memory) for blk in self.blocks]
        cache: list[tuple[Tensor, Tensor] | None] = [None] * len(self.blocks)
        token = torch.full((b * k,), vocab.SOS, dtype=torch.long, device=memory.device)
        score = beam_start(k, memory.device).expand(b, k)
        ended = torch.zeros(b, k, dtype=torch.bool, device=memory.device)
        history = torch.zeros(b, k, 0, dtype=torch.long, device=memory.device)
        only_pad = pad_only(v, memory.device)
        first_row = torch.arange(b, device=memory.device).unsqueeze(1) * k
        for t in range(steps):
            y, rotation = self.inputs(token.unsqueeze(1), t)  # (Bk, 1, D)
            for j, block in enumerate(self.blocks):
                y, cache[j] = block(y, None, cross_kv[j], cross, cache[j], rotation)
            logp = torch.log_softmax(self.head(self.norm(y))[:, 0].float(), -1).view(b, k, v)
            logp = torch.where(ended.unsqueeze(-1), only_pad, logp + length_penalty)
            score, picked = best_first((score.unsqueeze(-1) + logp).flatten(1), k)  # (B, k)
            parent, token = picked // v, picked % v
            rows = (first_row + parent).flatten()
            cache = [(kc[rows], vc[rows]) for kc, vc in cache]
            history = torch.cat([history[first_row // k, parent], token[..., None]], 2)
            ended = ended.gather(1, parent) | (token == vocab.EOS)
            token = token.flatten()
        return history, score

    def export_form(
        self, memory_norm: nn.LayerNorm, beam_width: int = 0, length_penalty: float = 0.0
    ) -> DecoderExport:
        return DecoderExport(self, memory_norm, beam_width, length_penalty)


def best_first(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` highest of each row of ``scores`` (R, N) and their indices, highest first; of
    equal scores the lower index first, as the file's top-k (TFLite's TOPK_V2) orders them
    (``torch.topk`` leaves the order of equal values unspecified)."""
    values, indices = scores.sort(dim=-1, descending=True, stable=True)
    return values[:, :k], indices[:, :k]


def beam_start(width: int, device: torch.device | None = None) -> Tensor:
    """(width,) starting scores: 0 for the first hypothesis, a masked score for the others (all
    start from the same start token, so only the first is extended at the first step)."""
    start = torch.full((width,), MASK_VALUE, device=device)
    start[0] = 0.0
    return start


def pad_only(vocab_size: int, device: torch.device | None = None) -> Tensor:
    """(V,) log-probabilities of an ended hypothesis: pad at no cost, anything else masked."""
    row = torch.full((vocab_size,), MASK_VALUE, device=device)
    row[vocab.PAD] = 0.0
    return row


class DecoderExport(ExportForm):
    """:meth:`Decoder.greedy` for one sequence, unrolled for ``max_target_len`` steps.

    ``forward(memory, valid, j)``: encoded frames (n, D) normalised without ``memory_norm``'s
    affine, ``valid`` (n, 1) float, ``j`` (n,) frame indices as float -> logits (L, V); rows
    after the end token are a one-hot pad (Kaggle's argmax decoding drops them).
    :meth:`greedy` and :meth:`teacher_forced` are the parts the joint decoding reads;
    :meth:`beam` (built with ``beam_width``) is the beam decoding's.
    """

    def __init__(
        self,
        dec: Decoder,
        memory_norm: nn.LayerNorm,
        beam_width: int = 0,
        length_penalty: float = 0.0,
    ):
        super().__init__()
        self.steps = dec.max_target_len
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
        pad = torch.zeros(1, dec.head.out_features)
        pad[0, vocab.PAD] = 1e4
        self.put("pad_row", pad)
        self.put("earlier_steps", torch.triu(torch.ones(self.steps, self.steps), diagonal=1))
        self.put("half_step", const(0.5))
        self.put("zero", const(0.0))
        if beam_width:  # the constants of beam(): made here (in the graph, arange and eye
            # came out as integers)
            k = self.beam_width = beam_width
            self.put("beam_rows", torch.arange(k, dtype=torch.float32).unsqueeze(0))  # (1, k)
            self.put("beam_own", torch.eye(k))
            self.put("beam_start", beam_start(k))
            self.put("beam_ended", torch.zeros(k, 1))
            self.put("beam_sos", torch.full((k,), vocab.SOS, dtype=torch.int32))
            self.put("pad_only", pad_only(dec.head.out_features).unsqueeze(0))
            self.put("length_penalty", const(length_penalty))

    def step_input(self, token: Tensor, t: int) -> tuple[Tensor, Rotation]:
        """Step ``t``'s tokens (R,) -> the first block's input (R, D) and the step's rotary
        tables (1, 1, D/H) (None without rotary): ``t`` is static in the unrolled loop, so both
        are slices of constants."""
        y = F.embedding(token, self.embed)
        if self.rotary:
            return y, (self.rotary_cos[t : t + 1, None], self.rotary_sin[t : t + 1, None])
        return y + self.positions[t], None

    def cross(self, memory: Tensor, valid: Tensor, j: Tensor) -> tuple[list, Tensor]:
        """Each block's cross-attention keys/values of ``memory`` and the (1, n) score bias."""
        # cross-attention mask of memory_mask(): valid frames; frame 0 when none is valid
        key_valid = valid.t()  # (1, n)
        none_valid = 1.0 - (key_valid.mean(1, keepdim=True) > self.zero).to(torch.float32)
        first = (j < self.half_step).to(torch.float32).unsqueeze(0)  # (1, n)
        cross_bias = attention_bias(torch.maximum(key_valid, first * none_valid))
        return [b.cross_attn.keys_values(memory) for b in self.blocks], cross_bias

    def forward(self, memory: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        logits, tokens = self.greedy(self.cross(memory, valid, j))
        is_end = (tokens - vocab.EOS).abs() < self.half_step  # (L,)
        # ended[t]: an end token at a step s < t (row vector times a strictly upper-triangular
        # matrix; the constant on the right keeps it a float x weight matmul for quantisers)
        ended = (
            is_end.to(torch.float32).unsqueeze(0) @ self.earlier_steps > self.half_step
        )  # (1, L)
        return torch.where(ended.t(), self.pad_row, logits)

    def greedy(self, cross: tuple[list, Tensor]) -> tuple[Tensor, Tensor]:
        """The unrolled greedy loop: logits (L, V) and each step's argmax (L,) as float."""
        cross_kv, cross_bias = cross
        cache: list[tuple[Tensor, Tensor] | None] = [None] * len(self.blocks)
        token = torch.tensor([vocab.SOS])
        rows, tokens = [], []
        for t in range(self.steps):
            y, rotation = self.step_input(token, t)  # (1, D)
            for b, block in enumerate(self.blocks):
                y, cache[b] = block.step(y, cache[b], cross_kv[b], cross_bias, None, rotation)
            rows.append(linear(normalise(y, self.eps), self.weights("head")))
            # The next input is this step's argmax. Unlike Decoder.greedy it is not replaced by
            # pad after the end token: only rows before the end are kept, and those never see a
            # later token (causal), so the outputs are the same.
            token = torch.topk(rows[-1], 1).indices[:, 0]  # (1,)
            tokens.append(token)
        return torch.cat(rows, 0), torch.cat(tokens).to(torch.float32)

    def beam(self, cross: tuple[list, Tensor]) -> tuple[Tensor, Tensor]:
        """:meth:`Decoder.beam` unrolled: tokens (width, L) and summed log-probabilities
        (width,) as float, best first.

        The cache is never reordered: every step appends the keys of all ``width`` rows, and an
        ancestry matrix (rows x cached columns, 1 where the column is one of the row's earlier
        positions) becomes the self-attention bias. Choosing the next rows multiplies it, the
        token history and the ended flags by the one-hot parent matrix: matmuls on static
        shapes, no gather.
        """
        cross_kv, cross_bias = cross
        k, v = self.beam_width, self.head_b.shape[0]
        cache: list[tuple[Tensor, Tensor] | None] = [None] * len(self.blocks)
        token, score, ended = self.beam_sos, self.beam_start, self.beam_ended
        history = ancestry = None
        for t in range(self.steps):
            seen = self.beam_own if ancestry is None else torch.cat([ancestry, self.beam_own], 1)
            bias = attention_bias(seen)
            y, rotation = self.step_input(token, t)  # (k, D)
            for b, block in enumerate(self.blocks):
                y, cache[b] = block.step(y, cache[b], cross_kv[b], cross_bias, bias, rotation)
            logp = torch.log_softmax(linear(normalise(y, self.eps), self.weights("head")), -1)
            logp = torch.where(ended > self.half_step, self.pad_only, logp + self.length_penalty)
            candidates = (score.unsqueeze(1) + logp).reshape(1, k * v)
            top = torch.topk(candidates, k)  # TOPK_V2: of equal scores the lower index first
            score = top.values[0]
            picked = top.indices[0].to(torch.float32)
            parent = ((picked + self.half_step) * (1.0 / v)).to(torch.int32).to(torch.float32)
            new = picked - parent * v  # (k,) the chosen tokens
            choose = ((parent.unsqueeze(1) - self.beam_rows) ** 2 < 0.25).to(torch.float32)
            ancestry = choose if ancestry is None else torch.cat([choose @ ancestry, choose], 1)
            history = (
                new.unsqueeze(1)
                if history is None
                else torch.cat([choose @ history, new.unsqueeze(1)], 1)
            )
            is_end = ((new - vocab.EOS) ** 2 < 0.25).to(torch.float32).unsqueeze(1)
            ended = torch.maximum(choose @ ended, is_end)
            token = new.to(torch.int32)
        return history, score

    def teacher_forced(
        self, inputs: Tensor, positions: Tensor, self_bias: Tensor, cross: tuple[list, Tensor]
    ) -> Tensor:
        """Logits (R, V) of known phrases, all positions at once (:meth:`Decoder.forward`).

        Args:
            inputs: (R,) int token inputs; several phrases may be stacked.
            positions: (R,) int position of each input in its phrase.
            self_bias: (R, R) self-attention score bias (causal within each phrase).
            cross: :meth:`cross` of the frames.
        """
        cross_kv, cross_bias = cross
        y, rotation = F.embedding(inputs, self.embed), None  # (R, D)
        if self.rotary:
            rotation = (
                F.embedding(positions, self.rotary_cos).unsqueeze(1),  # (R, 1, D/H)
                F.embedding(positions, self.rotary_sin).unsqueeze(1),
            )
        else:
            y = y + F.embedding(positions, self.positions)
        for b, block in enumerate(self.blocks):
            y = block.rows(y, self_bias, cross_kv[b], cross_bias, rotation)
        return linear(normalise(y, self.eps), self.weights("head"))
