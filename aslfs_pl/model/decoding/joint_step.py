"""``joint_step``: greedy over the attention decoder and the CTC prefix score at every step (the
2nd place's joint decoding; Watanabe et al. 2017, arXiv:1609.06773).

At each step every next token c of the phrase so far g is scored

    (1 - w) log p_attention(c | g) + w (psi(g + c) - psi(g)),

psi the CTC prefix probability (:mod:`aslfs_pl.model.ctc_prefix`; the end token's is g's whole
CTC probability) and w = :data:`PREFIX_CTC_WEIGHT` (theirs: 0.3 in the write-up, 0.2 as their
class's default); the best is taken, and the decoder steps on it. Unlike ``joint`` (which
rescores two finished phrases), the CTC head steers each character.

In the TFLite file the loop is unrolled over the decoder's steps, and each step's prefix scores
run over the encoded rows of ``max_frames`` frames (the sequence's, then blanks): a static
(F, F) triangle per step, no loop over the frames.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.export_ops import ExportForm
from aslfs_pl.model import ctc_prefix
from aslfs_pl.model.ctc_head import blank_after_end, frames_inside
from aslfs_pl.model.decoding.base import Decoding, Encoded, ParityRow, register
from aslfs_pl.model.decoding.joint import PhraseRescoring, same_phrase

#: Weight of the CTC prefix score against the attention decoder's log-probability.
PREFIX_CTC_WEIGHT = 0.3


@register
class JointStep(Decoding):
    """See the module doc.

    TFLite rows: ``max_target_len`` one-hot rows of the chosen phrase. Parity: as for ``joint``
    (equal phrases, or with fp16 or int8 weights a near tie away).
    """

    name = "joint_step"
    summary = "greedy over the attention decoder plus the CTC prefix score at every step"
    needs_ctc = True

    def read(self, encoded: Encoded) -> Tensor:
        net, memory, valid = encoded.net, encoded.memory, encoded.valid
        probs = blank_after_end(
            torch.softmax(encoded.ctc_logits().float(), -1), frames_inside(valid)
        )
        # the prefix sums in float32 under mixed precision too (cumulative sums of
        # log-probabilities need it)
        full = torch.autocast(memory.device.type, enabled=False)
        with full:
            steps = PrefixSteps(probs)
        state = net.decoder.start(memory, valid)
        token = torch.full((memory.shape[0],), vocab.SOS, dtype=torch.long, device=memory.device)
        done = torch.zeros_like(token, dtype=torch.bool)
        out = []
        for t in range(net.config.max_target_len):
            attention = torch.log_softmax(net.decoder.step(state, token, t).float(), -1)
            with full:
                best = steps.choose(attention, done).long()
            token = torch.where(done, torch.full_like(best, vocab.PAD), best)
            done = done | (token == vocab.EOS)
            out.append(token)
        return torch.stack(out, 1)

    def export_head(self, net: nn.Module) -> ExportForm:
        return JointStepExport(net)

    def parity_row(self, net: nn.Module, frames: int, out: np.ndarray, padded: Tensor) -> ParityRow:
        return same_phrase(self.name, net, frames, out, padded)


class PrefixSteps:
    """The CTC side of the loop over (B, F, V) probabilities: its prefix state, and the joint
    choice of each step (written once for the PyTorch batch and the file's one sequence)."""

    def __init__(self, probs: Tensor, constants: tuple[Tensor, Tensor, Tensor] | None = None):
        self.logp = ctc_prefix.log_probs(probs.float())
        if constants is None:
            b, f, v = probs.shape
            constants = (
                torch.arange(v, dtype=torch.float32, device=probs.device),
                *ctc_prefix.triangles(torch.arange(f, dtype=torch.float32, device=probs.device)),
            )
        self.classes, self.triangle = constants[0], constants[1:]
        self.prefix = ctc_prefix.start(self.logp, self.triangle[0])

    def choose(self, attention: Tensor, done: Tensor) -> Tensor:
        """(B, V) attention log-probabilities of the step -> (B,) float chosen tokens; the
        prefix grows by them (rows ``done`` and rows that end keep theirs)."""
        prefix = self.prefix
        psi = ctc_prefix.scores(prefix, self.logp, self.classes)
        total = (1.0 - PREFIX_CTC_WEIGHT) * attention + PREFIX_CTC_WEIGHT * (
            psi - prefix.score.unsqueeze(1)
        )
        best = torch.topk(total, 1).indices[:, 0].to(torch.float32)
        grown = ctc_prefix.extend(prefix, self.logp, best, psi, self.classes, self.triangle)
        ended = done | ((best - vocab.EOS) ** 2 < 0.25)
        self.prefix = ctc_prefix.keep(ended, prefix, grown)
        return best


class JointStepExport(PhraseRescoring):
    """:class:`JointStep` for one sequence -> (L, V) one-hot rows of the chosen phrase."""

    def __init__(self, net: nn.Module):
        super().__init__(net)
        self.put("frame_index", torch.arange(self.frames, dtype=torch.float32))
        self.put("sos", torch.tensor([vocab.SOS], dtype=torch.int32))
        self.put("not_done", torch.zeros(1, dtype=torch.bool))

    def forward(self, memory: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        logits, _, _, inside = self.ctc.emissions(memory, valid, j)
        upto, later = ctc_prefix.triangles(self.frame_index)  # (F, F) each, made at run time
        steps = PrefixSteps(
            self.ctc_probs(logits, inside).unsqueeze(0), (self.classes, upto, later)
        )
        state = self.decoder.cross(memory, valid, j)
        token, done, chosen = self.sos, self.not_done, []
        for t in range(self.length):
            attention = torch.log_softmax(self.decoder.step(state, token, t, None), -1)
            best = steps.choose(attention, done)  # (1,)
            done = done | ((best - vocab.EOS) ** 2 < 0.25)
            chosen.append(best)
            token = best.to(torch.int32)
        # rows after the end token: the loop read on, Kaggle's argmax drops what follows eos
        return self.rows(self.after_end_as_pad(torch.cat(chosen)))

    def after_end_as_pad(self, tokens: Tensor) -> Tensor:
        """(L,) float tokens with everything after the first end token made pad."""
        is_end = ((tokens - self.eos) ** 2 < 0.25).to(torch.float32)
        seen = is_end.unsqueeze(0) @ self.through - is_end.unsqueeze(0)  # an eos before t
        return torch.where(seen[0] > 0.5, torch.full_like(tokens, float(vocab.PAD)), tokens)
