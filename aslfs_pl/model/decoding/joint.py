"""``joint``: both greedy hypotheses, each rescored by both heads.

Attention rescoring, as in WeNet (Yao et al. 2021, arXiv:2102.01547): the attention decoder's
greedy phrase and greedy CTC's phrase are each scored by the attention decoder's log-probability
of the phrase (teacher-forced, all positions at once) plus ``JOINT_CTC_WEIGHT`` x its CTC
log-likelihood (:func:`aslfs_pl.model.ctc_head.ctc_log_likelihood`); the higher total wins, ties go to
the attention hypothesis.

The PyTorch read-out (:meth:`Joint.read`, a batch) and the export form (:class:`JointExport`,
one sequence) build the hypotheses with the same :func:`hypotheses` and choose with the same
:func:`choose`; they differ only in how the decoder and the CTC head are run (the trained layers
or their export forms).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.export_ops import ExportForm, const, export_form
from aslfs_pl.model.ctc_head import blank_after_end, ctc_log_likelihood, frames_inside
from aslfs_pl.model.decoding.base import Decoding, Encoded, ParityRow, nudged_margin, register
from aslfs_pl.model.decoding.ctc import CTCExport
from aslfs_pl.model.layers import attention_bias

#: Weight of the CTC log-likelihood against the attention log-probability.
JOINT_CTC_WEIGHT = 1.0


@register
class Joint(Decoding):
    """See the module doc.

    TFLite rows: ``max_target_len`` one-hot rows of the chosen phrase (its eos and pad rows
    decode to nothing). Parity: the phrases must be equal; with fp16 or int8 weights the file's
    phrase may be a near tie away (one that PyTorch reads with its logits moved by no more than
    the tolerance, :func:`~aslfs_pl.model.decoding.base.nudged_margin`).
    """

    name = "joint"
    summary = "attention and CTC hypotheses, each rescored by both heads; the better one"
    needs_ctc = True

    def read(self, encoded: Encoded) -> Tensor:
        net, memory, valid = encoded.net, encoded.memory, encoded.valid
        attention, ctc = encoded.tokens("attention"), encoded.tokens("ctc")  # (B, L), (B, T)
        ended = torch.cumsum(attention == vocab.EOS, 1) > 0
        keep_a = ((attention < vocab.NUM_CHARACTERS) & ~ended).float()
        slots = torch.arange(net.config.max_target_len, dtype=torch.float32, device=memory.device)
        frames = torch.arange(ctc.shape[1], dtype=torch.float32, device=memory.device)
        phrases = torch.stack(
            [
                hypotheses(a.float(), ka, c.float(), (c != vocab.PAD).float(), frames, slots)
                for a, ka, c in zip(attention, keep_a, ctc, strict=True)
            ]
        )  # (B, 2, L)
        sos = torch.full_like(phrases[..., :1], vocab.SOS)
        inputs = torch.cat([sos, phrases[..., :-1]], -1).long().flatten(0, 1)  # (2B, L)
        logits = net.decoder(inputs, memory.repeat_interleave(2, 0), valid.repeat_interleave(2, 0))
        probs = blank_after_end(
            torch.softmax(encoded.ctc_logits().float(), -1), frames_inside(valid)
        )
        return choose(phrases, logits.unflatten(0, (-1, 2)), probs).long()

    def export_head(self, net: nn.Module) -> ExportForm:
        return JointExport(net)

    def parity_row(self, net: nn.Module, frames: int, out: np.ndarray, padded: Tensor) -> ParityRow:
        return same_phrase(self.name, net, frames, out, padded)


def same_phrase(
    decoding: str, net: nn.Module, frames: int, out: np.ndarray, padded: Tensor
) -> ParityRow:
    """One-hot phrase rows ``out`` (L, V) against the PyTorch read-out ``decoding`` of
    ``padded``: the phrases must be equal, or the file's a near tie away (the rows carry no
    logits to compare; the margin is :func:`~aslfs_pl.model.decoding.base.nudged_margin`'s)."""
    encoded = Encoded(net, padded)
    reference = encoded.tokens(decoding)[0].numpy()
    picked = np.argmax(out, 1)
    text = vocab.decode_kaggle(picked)
    same = text == vocab.decode(reference)
    differ = np.flatnonzero(picked != reference)
    diverged_at = int(differ[0]) if differ.size else None
    margin = 0.0 if same else nudged_margin(encoded, padded, decoding, text)
    return ParityRow(frames, bool(same), 0.0, diverged_at, margin)


def hypotheses(
    attention: Tensor,
    keep_attention: Tensor,
    ctc: Tensor,
    keep_ctc: Tensor,
    frames: Tensor,
    slots: Tensor,
) -> Tensor:
    """The two hypotheses of one sequence in the decoder's layout, (2, L) float: the attention
    decoder's kept tokens (L,) and greedy CTC's kept frame tokens (m,), each :func:`compact`-ed
    (``frames``: 0..m-1, ``slots``: 0..L-1, as float)."""
    return torch.stack(
        [
            compact(attention, keep_attention, slots, slots),
            compact(ctc, keep_ctc, frames, slots),
        ]
    )


def choose(phrases: Tensor, decoder_logits: Tensor, probs: Tensor) -> Tensor:
    """The better of each sequence's two hypotheses.

    Args:
        phrases: (B, 2, L) float hypotheses (:func:`hypotheses`).
        decoder_logits: (B, 2, L, V) the attention decoder's teacher-forced logits of them.
        probs: (B, F, V) per-frame CTC probabilities, the blank after the sequence's end.

    Returns:
        (B, L) float tokens of the chosen phrase; a tie goes to the attention hypothesis.
    """
    score = phrase_log_prob(decoder_logits, phrases)
    score = score + JOINT_CTC_WEIGHT * ctc_log_likelihood(probs, phrases)  # (B, 2)
    return torch.where(score[:, 1:] > score[:, :1], phrases[:, 1], phrases[:, 0])


def compact(tokens: Tensor, keep: Tensor, index: Tensor, slots: Tensor) -> Tensor:
    """The kept tokens in order, then eos, then pad: a phrase in the decoder's layout.

    Args:
        tokens: (m,) float token ids; m may be a symbolic frame count.
        keep: (m,) float 1 for a token of the phrase, 0 otherwise.
        index: (m,) float 0..m-1.
        slots: (L,) float 0..L-1; at most L - 1 tokens are kept (later ones are dropped).

    Returns:
        (L,) float tokens.
    """
    quarter = slots[:1] * 0.0 + 0.25  # a tensor: comparisons with a number do not lower
    before = (index.unsqueeze(0) < index.unsqueeze(1)).to(torch.float32)  # (m, m): u before t
    count = (before @ keep.unsqueeze(1))[:, 0]  # (m,) kept tokens before each position
    offset = count.unsqueeze(0) - slots.unsqueeze(1)  # (L, m)
    pick = keep.unsqueeze(0) * (offset * offset < quarter).to(torch.float32)  # (L, m)
    chosen = (pick @ tokens.unsqueeze(1))[:, 0]  # (L,)
    total = torch.minimum((count + keep)[-1:], slots[-1:])  # (1,) kept, at most L - 1
    eos = torch.full_like(chosen, float(vocab.EOS))
    pad = torch.full_like(chosen, float(vocab.PAD))
    tail = torch.where((slots - total) * (slots - total) < 0.25, eos, pad)
    return torch.where(slots < total - 0.5, chosen, tail)


def phrase_log_prob(logits: Tensor, phrases: Tensor) -> Tensor:
    """Sum of log-softmax(logits) at each phrase token up to its eos: (..., L, V), (..., L)
    float tokens in :func:`compact`'s layout -> (...)."""
    classes = torch.arange(logits.shape[-1], dtype=torch.float32, device=logits.device)
    onehot = ((phrases.unsqueeze(-1) - classes) ** 2 < 0.25).to(torch.float32)
    onehot = onehot * ((phrases - vocab.PAD) ** 2 > 0.25).to(torch.float32).unsqueeze(-1)
    return (torch.log_softmax(logits.float(), -1) * onehot).sum((-1, -2))


class PhraseRescoring(ExportForm):
    """What the export forms that rescore whole phrases with both heads share (``joint`` and
    ``beam``): the decoder's and the CTC head's export forms (None without the head: ``beam``), the phrase layout's constants, the
    per-frame CTC probabilities padded to the encoded rows of ``max_frames`` frames
    (``net.memory_rows``) with rows of blank for the forward algorithm
    (whose loop is unrolled over that static count), and the one-hot output rows."""

    def __init__(self, net: nn.Module, beam_width: int = 0):
        super().__init__()
        cfg = net.config
        self.frames, self.length = net.memory_rows, cfg.max_target_len
        self.decoder = export_form(
            net.decoder,
            net.memory_norm,
            beam_width=beam_width,
            length_penalty=cfg.beam_length_penalty,
        )
        self.ctc = CTCExport(net) if net.ctc is not None else None
        self.put("slots", torch.arange(self.length, dtype=torch.float32))
        self.put("through", torch.triu(torch.ones(self.length, self.length)))  # [s, t]: s <= t
        blank = torch.zeros(1, cfg.vocab_size)
        blank[0, vocab.PAD] = 1.0
        self.put("blank", blank)
        self.put("blank_block", blank.repeat(self.frames, 1))
        self.put("eos", const(float(vocab.EOS)))
        self.put("classes", torch.arange(cfg.vocab_size, dtype=torch.float32))

    def kept(self, tokens: Tensor) -> Tensor:
        """(..., L) float decoder tokens -> (..., L) 1.0 for the characters before the first eos."""
        is_end = ((tokens - self.eos) ** 2 < 0.25).to(torch.float32)
        open_ = (is_end @ self.through) < 0.5  # no eos at or before step t
        return (open_ & (tokens < vocab.NUM_CHARACTERS - 0.5)).to(torch.float32)

    def ctc_probs(self, logits: Tensor, inside: Tensor) -> Tensor:
        """The CTC head's (n, V) logits -> (F, V) probabilities, blank after the sequence."""
        probs = torch.where(inside.unsqueeze(1), torch.softmax(logits, -1), self.blank)
        return torch.cat([probs, self.blank_block], 0)[: self.frames]

    def rows(self, chosen: Tensor) -> Tensor:
        """(L,) float phrase -> (L, V) one-hot rows (its eos and pad rows decode to nothing)."""
        return ((chosen.unsqueeze(1) - self.classes) ** 2 < 0.25).to(torch.float32) * 1e4


class JointExport(PhraseRescoring):
    """:class:`Joint` for one sequence -> (L, V) one-hot rows of the chosen phrase."""

    def __init__(self, net: nn.Module):
        super().__init__(net)
        length = self.length
        self.put("positions", torch.arange(length).repeat(2))
        causal = torch.tril(torch.ones(length, length))
        self.put("self_bias", attention_bias(torch.block_diag(causal, causal)))
        self.put("sos", torch.tensor([float(vocab.SOS)]))

    def forward(self, memory: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        cross = self.decoder.cross(memory, valid, j)
        _, attention = self.decoder.greedy(cross)  # (L,) float
        logits, best, emit, inside = self.ctc.emissions(memory, valid, j)
        keep_a = self.kept(attention.unsqueeze(0))[0]
        phrases = hypotheses(attention, keep_a, best, emit.to(torch.float32), j, self.slots)
        sos = self.sos.expand(2, 1)
        inputs = torch.cat([sos, phrases[:, :-1]], 1).reshape(-1).to(torch.int32)  # (2L,)
        scored = self.decoder.teacher_forced(inputs, self.positions, self.self_bias, cross)
        probs = self.ctc_probs(logits, inside)
        chosen = choose(phrases[None], scored.reshape(1, 2, self.length, -1), probs[None])[0]
        return self.rows(chosen)
