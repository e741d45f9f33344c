"""The greedy loop and the beam search, written once over a decoder's steps.

A decoder that searches says how to take one step, and the loops here do the rest:

* :class:`Search` (PyTorch, a batch): ``start(memory, valid)`` -> a state, ``step(state,
  token, t)`` -> the step's scores (R, V) (logits, or an ensemble's averaged log-probabilities:
  their argmax is the greedy token, their log-softmax the step's log-probabilities), and
  ``reorder(state, rows)`` (the beam's surviving rows); :class:`~aslfs_pl.model.decoder.Decoder`
  and the ensemble's decoder (:mod:`aslfs_pl.model.ensemble`) implement them.
* :class:`ExportSearch` (the deployment form, one sequence, unrolled): ``cross(memory, valid,
  j)`` -> a state, ``step(state, token, t, self_bias)`` -> the step's scores (R, V); the beam
  never reorders a cache (an ancestry matrix masks it instead, see :meth:`ExportSearch.beam`).

The beam keeps, of equal scores, the earlier hypothesis and then the lower token in both
(:func:`best_first`; the file's top-k, TFLite's TOPK_V2, orders equal values by index).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from aslfs_pl import vocab
from aslfs_pl.export_ops import const
from aslfs_pl.model.layers import MASK_VALUE, attention_bias


class Search:
    """:meth:`greedy` and :meth:`beam` over ``start`` / ``step`` / ``reorder`` (module doc)."""

    max_target_len: int

    def start(self, memory: Tensor, valid: Tensor) -> Any:
        raise NotImplementedError

    def step(self, state: Any, token: Tensor, t: int) -> Tensor:
        raise NotImplementedError

    def reorder(self, state: Any, rows: Tensor) -> None:
        raise NotImplementedError

    def greedy(
        self, memory: Tensor, valid: Tensor, steps: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Greedy decoding, ``steps`` tokens (a fixed count). Every step emits a token; after
        the end token a row emits pad, so a whole row decodes to the phrase.

        Returns:
            tokens (B, steps) int64 and each step's scores (B, steps, V).
        """
        steps = steps or self.max_target_len
        state = self.start(memory, valid)
        token = torch.full((memory.shape[0],), vocab.SOS, dtype=torch.long, device=memory.device)
        done = torch.zeros_like(token, dtype=torch.bool)
        pad = torch.full_like(token, vocab.PAD)
        out_tokens, out_scores = [], []
        for t in range(steps):
            scores = self.step(state, token, t)  # (B, V)
            token = torch.where(done, pad, scores.argmax(-1))
            done = done | (token == vocab.EOS)
            out_tokens.append(token)
            out_scores.append(scores)
        return torch.stack(out_tokens, 1), torch.stack(out_scores, 1)

    def beam(
        self,
        memory: Tensor,
        valid: Tensor,
        width: int,
        steps: int | None = None,
        length_penalty: float = 0.0,
    ) -> tuple[Tensor, Tensor]:
        """Beam search: at each of ``steps`` steps every hypothesis is extended by every token
        and the ``width`` best by score are kept (:func:`best_first`); the score is the summed
        log-probability plus ``length_penalty`` per token emitted (end token included). A
        hypothesis that has emitted the end token is only extended by pad, at no cost.

        Returns:
            tokens (B, width, steps) int64 (as :meth:`greedy`'s rows) and their scores
            (B, width), best first.
        """
        steps = steps or self.max_target_len
        b, k, device = memory.shape[0], width, memory.device
        state = self.start(memory.repeat_interleave(k, 0), valid.repeat_interleave(k, 0))
        token = torch.full((b * k,), vocab.SOS, dtype=torch.long, device=device)
        score = beam_start(k, device).expand(b, k)
        ended = torch.zeros(b, k, dtype=torch.bool, device=device)
        history = torch.zeros(b, k, 0, dtype=torch.long, device=device)
        first_row = torch.arange(b, device=device).unsqueeze(1) * k
        for t in range(steps):
            logp = torch.log_softmax(self.step(state, token, t).float(), -1)
            v = logp.shape[-1]
            logp = logp.view(b, k, v)
            logp = torch.where(ended.unsqueeze(-1), pad_only(v, device), logp + length_penalty)
            score, picked = best_first((score.unsqueeze(-1) + logp).flatten(1), k)  # (B, k)
            parent, token = picked // v, picked % v
            self.reorder(state, (first_row + parent).flatten())
            history = torch.cat([history[first_row // k, parent], token[..., None]], 2)
            ended = ended.gather(1, parent) | (token == vocab.EOS)
            token = token.flatten()
        return history, score


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


class ExportSearch:
    """The unrolled greedy loop and beam search of a deployment form (module doc).

    Mixed into an :class:`~aslfs_pl.export_ops.ExportForm` that calls :meth:`put_search` in its
    ``__init__`` and implements ``cross`` and ``step``.
    """

    steps: int

    def cross(self, memory: Tensor, valid: Tensor, j: Tensor) -> Any:
        raise NotImplementedError

    def step(self, state: Any, token: Tensor, t: int, self_bias: Tensor | None) -> Tensor:
        raise NotImplementedError

    def put_search(
        self, steps: int, vocab_size: int, beam_width: int = 0, length_penalty: float = 0.0
    ) -> None:
        """The loops' constants (made here: in the graph, arange and eye came out as integers)."""
        self.steps, self.vocab_size, self.beam_width = steps, vocab_size, beam_width
        self.put("half_step", const(0.5))
        pad = torch.zeros(1, vocab_size)
        pad[0, vocab.PAD] = 1e4
        self.put("pad_row", pad)
        self.put("earlier_steps", torch.triu(torch.ones(steps, steps), diagonal=1))
        if beam_width:
            k = beam_width
            self.put("beam_rows", torch.arange(k, dtype=torch.float32).unsqueeze(0))  # (1, k)
            self.put("beam_own", torch.eye(k))
            self.put("beam_start", beam_start(k))
            self.put("beam_ended", torch.zeros(k, 1))
            self.put("beam_sos", torch.full((k,), vocab.SOS, dtype=torch.int32))
            self.put("pad_only", pad_only(vocab_size).unsqueeze(0))
            self.put("length_penalty", const(length_penalty))

    def greedy_rows(self, state: Any) -> Tensor:
        """The greedy loop's scores (L, V), the rows after the end token a one-hot pad."""
        rows, tokens = self.greedy(state)
        is_end = (tokens - vocab.EOS).abs() < self.half_step  # (L,)
        # ended[t]: an end token at a step s < t (row vector times a strictly upper-triangular
        # matrix; the constant on the right keeps it a float x weight matmul for quantisers)
        ended = is_end.to(torch.float32).unsqueeze(0) @ self.earlier_steps > self.half_step
        return torch.where(ended.t(), self.pad_row, rows)

    def greedy(self, state: Any) -> tuple[Tensor, Tensor]:
        """The unrolled greedy loop: each step's scores (L, V) and argmax (L,) as float."""
        token = torch.tensor([vocab.SOS])
        rows, tokens = [], []
        for t in range(self.steps):
            rows.append(self.step(state, token, t, None))
            # The next input is this step's argmax. Unlike Search.greedy it is not replaced by
            # pad after the end token: only rows before the end are kept, and those never see a
            # later token (causal), so the outputs are the same.
            token = torch.topk(rows[-1], 1).indices[:, 0]  # (1,)
            tokens.append(token)
        return torch.cat(rows, 0), torch.cat(tokens).to(torch.float32)

    def beam(self, state: Any) -> tuple[Tensor, Tensor]:
        """:meth:`Search.beam` unrolled: tokens (width, L) and scores (width,) as float, best
        first.

        The cache is never reordered: every step appends the keys of all ``width`` rows, and an
        ancestry matrix (rows x cached columns, 1 where the column is one of the row's earlier
        positions) becomes the self-attention bias. Choosing the next rows multiplies it, the
        token history and the ended flags by the one-hot parent matrix: matmuls on static
        shapes, no gather.
        """
        k, v = self.beam_width, self.vocab_size
        token, score, ended = self.beam_sos, self.beam_start, self.beam_ended
        history = ancestry = None
        for t in range(self.steps):
            seen = self.beam_own if ancestry is None else torch.cat([ancestry, self.beam_own], 1)
            logp = torch.log_softmax(self.step(state, token, t, attention_bias(seen)), -1)
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
