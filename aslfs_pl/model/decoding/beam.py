"""``beam``: the attention decoder's beam search, its final hypotheses rescored with CTC.

The decoder keeps the ``model.beam_width`` best hypotheses by summed log-probability at every
step (:meth:`aslfs_pl.model.decoder.Decoder.beam`); at the end each one is scored by that sum
plus ``JOINT_CTC_WEIGHT`` x its CTC log-likelihood (:func:`aslfs_pl.model.ctc.ctc_log_likelihood`),
and the best wins (ties: the beam's order). The CTC scores rescore the final beam; they do not
steer the search itself (a CTC prefix score per step needs a loop over the frames per step,
which the TFLite file cannot hold at a symbolic frame count). Width 1 is the greedy phrase.

The PyTorch read-out (a batch) and the export form (one sequence) lay out the hypotheses with the
same :func:`~aslfs_pl.model.decoding.joint.compact` and choose with the same :func:`first_best`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.export_ops import ExportForm, const, export_form
from aslfs_pl.model.ctc import blank_after_end, ctc_log_likelihood, frames_inside
from aslfs_pl.model.decoding.base import Decoding, Encoded, ParityRow, register
from aslfs_pl.model.decoding.ctc import CTCExport
from aslfs_pl.model.decoding.joint import JOINT_CTC_WEIGHT, compact, same_phrase


@register
class Beam(Decoding):
    """See the module doc.

    TFLite rows: ``max_target_len`` one-hot rows of the chosen phrase. Parity: the phrases must
    be equal (the rows carry no logits to compare), as for ``joint``.
    """

    name = "beam"
    summary = "the decoder's beam search (model.beam_width), the final beam rescored with CTC"
    needs_ctc = True

    def read(self, encoded: Encoded) -> Tensor:
        net, memory, valid = encoded.net, encoded.memory, encoded.valid
        tokens, score = net.decoder.beam(memory, valid, net.config.beam_width)  # (B, k, L)
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
        return same_phrase(frames, out, Encoded(net, padded).tokens(self.name)[0].numpy())


def first_best(scores: Tensor) -> Tensor:
    """(..., H) scores -> (..., H) one-hot of the first highest one, with comparisons and a
    matmul only (what lowers to TFLite)."""
    h = scores.shape[-1]
    a, b = scores.unsqueeze(-1), scores.unsqueeze(-2)  # [i, j]: hypothesis i against j
    earlier = torch.ones(h, h, dtype=torch.bool, device=scores.device).tril(-1)  # j < i
    beats = torch.where(earlier, a > b, a >= b).to(torch.float32)  # (..., H, H)
    wins = beats @ torch.ones(h, 1, device=scores.device)  # (..., H, 1)
    return (wins[..., 0] > h - 0.5).to(torch.float32)


class BeamExport(ExportForm):
    """:class:`Beam` for one sequence -> (L, V) one-hot rows of the chosen phrase. The frames
    are padded to ``max_frames`` rows of blank for the CTC forward algorithm (as
    :class:`~aslfs_pl.model.decoding.joint.JointExport`)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        cfg = net.config
        self.width, self.frames = cfg.beam_width, cfg.max_frames
        length = cfg.max_target_len
        self.decoder = export_form(net.decoder, net.encoder.norm, beam_width=cfg.beam_width)
        self.ctc = CTCExport(net.ctc, net.encoder.norm)
        self.put("slots", torch.arange(length, dtype=torch.float32))
        self.put("through", torch.triu(torch.ones(length, length)))  # [s, t]: s <= t
        blank = torch.zeros(1, cfg.vocab_size)
        blank[0, vocab.PAD] = 1.0
        self.put("blank", blank)
        self.put("blank_block", blank.repeat(cfg.max_frames, 1))
        self.put("eos", const(float(vocab.EOS)))
        self.put("classes", torch.arange(cfg.vocab_size, dtype=torch.float32))

    def forward(self, memory: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        tokens, score = self.decoder.beam(self.decoder.cross(memory, valid, j))
        is_end = ((tokens - self.eos) ** 2 < 0.25).to(torch.float32)  # (k, L)
        open_ = (is_end @ self.through) < 0.5  # no eos at or before step t
        keep = (open_ & (tokens < vocab.NUM_CHARACTERS - 0.5)).to(torch.float32)
        phrases = torch.stack(
            [compact(tokens[h], keep[h], self.slots, self.slots) for h in range(self.width)]
        )  # (k, L)
        logits, _, _, inside = self.ctc.emissions(memory, valid, j)
        probs = torch.where(inside.unsqueeze(1), torch.softmax(logits, -1), self.blank)
        probs = torch.cat([probs, self.blank_block], 0)[: self.frames]  # (F, V)
        total = score + JOINT_CTC_WEIGHT * ctc_log_likelihood(probs[None], phrases[None])[0]
        chosen = (first_best(total).unsqueeze(0) @ phrases)[0]  # (L,)
        return ((chosen.unsqueeze(1) - self.classes) ** 2 < 0.25).to(torch.float32) * 1e4
