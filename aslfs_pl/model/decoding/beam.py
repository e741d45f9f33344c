"""``beam``: the attention decoder's beam search, its final hypotheses rescored with CTC when the
network has the head.

The decoder keeps the ``model.beam_width`` best hypotheses by score at every step
(:meth:`aslfs_pl.model.search.Search.beam`: summed log-probability plus
``model.beam_length_penalty`` per token); at the end each one is scored by that plus
``JOINT_CTC_WEIGHT`` x its CTC log-likelihood (:func:`aslfs_pl.model.ctc_head.ctc_log_likelihood`),
and the best wins (ties: the beam's order). Without the CTC head (the 4th place's recipe) the
beam's best hypothesis wins. The CTC scores rescore the final beam; they do not
steer the search itself (``joint_step`` steers a greedy search with per-step CTC prefix
scores, :mod:`aslfs_pl.model.ctc_prefix`; a beam over them is not built). Width 1 is the
greedy phrase.

The PyTorch read-out (a batch) and the export form (one sequence) lay out the hypotheses with the
same :func:`~aslfs_pl.model.decoding.joint.compact` and choose with the same :func:`first_best`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.export_ops import ExportForm
from aslfs_pl.model.ctc_head import blank_after_end, ctc_log_likelihood, frames_inside
from aslfs_pl.model.decoding.base import Decoding, Encoded, ParityRow, register
from aslfs_pl.model.decoding.joint import (
    JOINT_CTC_WEIGHT,
    PhraseRescoring,
    compact,
    same_phrase,
)


@register
class Beam(Decoding):
    """See the module doc.

    TFLite rows: ``max_target_len`` one-hot rows of the chosen phrase. Parity: as for ``joint``
    (equal phrases, or with fp16 or int8 weights a near tie away).
    """

    name = "beam"
    summary = (
        "the decoder's beam search (model.beam_width), the final beam rescored with CTC when "
        "the network has the head"
    )

    def read(self, encoded: Encoded) -> Tensor:
        net, memory, valid = encoded.net, encoded.memory, encoded.valid
        cfg = net.config
        tokens, score = net.decoder.beam(
            memory, valid, cfg.beam_width, length_penalty=cfg.beam_length_penalty
        )  # (B, k, L)
        if net.ctc is None:  # the beam's best, first
            return tokens[:, 0]
        slots = torch.arange(tokens.shape[-1], dtype=torch.float32, device=memory.device)
        ended = torch.cumsum(tokens == vocab.EOS, -1) > 0
        keep = ((tokens < vocab.NUM_CHARACTERS) & ~ended).float()
        phrases = torch.stack(
            [
                torch.stack(
                    [compact(h.float(), kh, slots, slots) for h, kh in zip(t, k_, strict=True)]
                )
                for t, k_ in zip(tokens, keep, strict=True)
            ]
        )  # (B, k, L)
        probs = blank_after_end(
            torch.softmax(encoded.ctc_logits().float(), -1), frames_inside(valid)
        )
        total = score + JOINT_CTC_WEIGHT * ctc_log_likelihood(probs, phrases)
        return (first_best(total).unsqueeze(1) @ phrases)[:, 0].long()

    def export_head(self, net: nn.Module) -> ExportForm:
        return BeamExport(net)

    def parity_row(self, net: nn.Module, frames: int, out: np.ndarray, padded: Tensor) -> ParityRow:
        return same_phrase(self.name, net, frames, out, padded)


def first_best(scores: Tensor) -> Tensor:
    """(..., H) scores -> (..., H) one-hot of the first highest one, with comparisons and a
    matmul only (what lowers to TFLite)."""
    h = scores.shape[-1]
    a, b = scores.unsqueeze(-1), scores.unsqueeze(-2)  # [i, j]: hypothesis i against j
    earlier = torch.ones(h, h, dtype=torch.bool, device=scores.device).tril(-1)  # j < i
    beats = torch.where(earlier, a > b, a >= b).to(torch.float32)  # (..., H, H)
    wins = beats @ torch.ones(h, 1, device=scores.device)  # (..., H, 1)
    return (wins[..., 0] > h - 0.5).to(torch.float32)


class BeamExport(PhraseRescoring):
    """:class:`Beam` for one sequence -> (L, V) one-hot rows of the chosen phrase."""

    def __init__(self, net: nn.Module):
        super().__init__(net, beam_width=net.config.beam_width)
        self.width = net.config.beam_width

    def forward(self, memory: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        tokens, score = self.decoder.beam(self.decoder.cross(memory, valid, j))  # (k, L), (k,)
        if self.ctc is None:  # the beam's best, first; its tokens after the end are pad
            return self.rows(tokens[0])
        keep = self.kept(tokens)
        phrases = torch.stack(
            [compact(tokens[h], keep[h], self.slots, self.slots) for h in range(self.width)]
        )  # (k, L)
        logits, _, _, inside = self.ctc.emissions(memory, valid, j)
        probs = self.ctc_probs(logits, inside)
        total = score + JOINT_CTC_WEIGHT * ctc_log_likelihood(probs[None], phrases[None])[0]
        return self.rows((first_best(total).unsqueeze(0) @ phrases)[0])
