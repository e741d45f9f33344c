"""How a phrase is read out of the network, in PyTorch and in the deployed graph.

Three decodings (``DECODINGS``), each also a TFLite route (:mod:`aslfs_pl.deploy.graph`):

* ``attention``: the decoder's greedy loop, one step per character
  (:meth:`aslfs_pl.model.decoder.Decoder.greedy`);
* ``ctc``: greedy CTC over the per-frame head (:func:`ctc_greedy`), one pass and no loop;
* ``joint``: both hypotheses, each rescored by both heads (attention rescoring, as in WeNet,
  Yao et al. 2021, arXiv:2102.01547): the attention decoder's log-probability of the phrase
  (teacher-forced, all positions at once) plus ``JOINT_CTC_WEIGHT`` x its CTC log-likelihood
  (:func:`ctc_log_likelihood`); the higher total wins, ties go to the attention hypothesis.

The PyTorch forms here are the references the export twins (:class:`CTCExport`,
:class:`JointExport`) are checked against. :func:`compact` and :func:`ctc_log_likelihood` are
written once, with the ops that lower to TFLite, and used by both sides.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.data.features import const
from aslfs_pl.model.export_ops import ExportForm, export_form, linear
from aslfs_pl.model.layers import attention_bias

DECODINGS = ("attention", "ctc", "joint")
#: Weight of the CTC log-likelihood against the attention log-probability in ``joint``.
JOINT_CTC_WEIGHT = 1.0
_TINY = 1e-30  # floor of a probability before its log (an impossible alignment)


def ctc_greedy(logits: Tensor, valid: Tensor) -> Tensor:
    """Greedy CTC decoding, frame by frame (Graves et al. 2006): (B, T, V) logits, (B, T) frame
    mask -> (B, T) tokens.

    A frame emits its best class when that class is a character (pad is the blank; sos/eos are
    never targets), differs from the previous frame's best class (repeats merge; a blank between
    two equal characters keeps both) and the frame is not after the last valid frame (the CTC
    loss's input length); every other frame gives pad, which decodes to nothing.
    """
    best = logits.argmax(-1)  # (B, T)
    previous = torch.cat([torch.full_like(best[:, :1], vocab.PAD), best[:, :-1]], 1)
    emit = _inside(valid) & (best < vocab.NUM_CHARACTERS) & (best != previous)
    return torch.where(emit, best, torch.full_like(best, vocab.PAD))


def _inside(valid: Tensor) -> Tensor:
    """(B, T) frames up to the last valid one."""
    position = torch.arange(1, valid.shape[1] + 1, device=valid.device)
    return position <= (position * valid).amax(1, keepdim=True)


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


def ctc_log_likelihood(probs: Tensor, phrases: Tensor) -> Tensor:
    """log P(phrase | frames) under CTC (the forward algorithm), for several phrases at once.

    A product of per-frame transition matrices, renormalised every frame (so no log-space
    arithmetic is needed), unrolled over the static frame count F.

    Args:
        probs: (B, F, V) per-frame class probabilities; frames after the sequence must be the
            blank (pad) with probability 1.
        phrases: (B, H, L) float tokens in :func:`compact`'s layout (characters, eos, pad).

    Returns:
        (B, H) log-likelihoods; an impossible phrase (more characters than frames allow) gets
        a large negative value instead of -inf.
    """
    b, h, length = phrases.shape
    f, v = probs.shape[1], probs.shape[2]
    labels = phrases[..., : length - 1]  # (B, H, L-1): a phrase has at most L - 1 characters
    s = 2 * (length - 1) + 1  # states: blank, c1, blank, c2, ..., blank
    state = torch.arange(s, dtype=torch.float32, device=probs.device)
    spread = (torch.arange(length - 1, device=probs.device).unsqueeze(1) * 2 + 1 == state).to(
        torch.float32
    )  # (L-1, S): character k sits at state 2k + 1
    is_label = spread.sum(0)  # (S,)
    ext = labels @ spread + (1.0 - is_label) * vocab.PAD  # (B, H, S) class of each state
    chars = (labels < vocab.NUM_CHARACTERS - 0.5).to(torch.float32).sum(-1, keepdim=True)
    used = (state <= 2 * chars).to(torch.float32)  # (B, H, S) states of this phrase
    classes = torch.arange(v, dtype=torch.float32, device=probs.device)
    onehot = ((ext.unsqueeze(-1) - classes) ** 2 < 0.25).to(torch.float32)  # (B, H, S, V)
    emit = (probs @ onehot.reshape(b, h * s, v).transpose(1, 2)).reshape(b, f, h, s)
    before2 = torch.cat([torch.full_like(ext[..., :2], -1.0), ext[..., :-2]], -1)
    skip = is_label * ((ext - before2) ** 2 > 0.25).to(torch.float32)  # (B, H, S)
    eye = torch.eye(s, device=probs.device)
    sub1 = torch.diag(torch.ones(s - 1, device=probs.device), -1)
    sub2 = torch.diag(torch.ones(s - 2, device=probs.device), -2)
    move = (eye + sub1 + sub2 * skip.unsqueeze(-1)) * used.unsqueeze(-1)  # (B, H, S, S)
    alpha = emit[:, 0] * (state < 1.5).to(torch.float32) * used  # (B, H, S)
    scales = []
    for t in range(f):
        if t:
            alpha = (move @ alpha.unsqueeze(-1))[..., 0] * emit[:, t]
        z = torch.clamp(alpha.sum(-1, keepdim=True), min=_TINY)
        scales.append(z)
        alpha = alpha / z
    last = (state - 2 * chars) ** 2 < 0.25  # (B, H, S): the final blank
    final = (last | ((state - 2 * chars + 1) ** 2 < 0.25)).to(torch.float32)  # or last char
    end = torch.clamp((alpha * final).sum(-1), min=_TINY)
    return torch.log(torch.cat(scales, -1)).sum(-1) + torch.log(end)


def ctc_loss_unrolled(logits: Tensor, valid: Tensor, target: Tensor) -> Tensor:
    """``F.ctc_loss`` (blank = pad, ``zero_infinity``) per row, from tensor ops only.

    :func:`ctc_log_likelihood` with its loop unrolled over the frames, so a device without a CTC
    kernel (torch-xla: ``F.ctc_loss`` falls back to the CPU, two device-to-host transfers a step)
    runs it in the step's own graph.

    Args:
        logits: (B, T, V) per-frame CTC logits.
        valid: (B, T) frame mask; frames after the last valid one are not read.
        target: (B, L) target tokens: characters, then eos / pad.

    Returns:
        (B,) negative log-likelihoods; 0 for a target that no alignment fits in the frames.
    """
    chars = target < vocab.NUM_CHARACTERS
    phrases = torch.where(chars, target, torch.full_like(target, vocab.PAD)).float()
    position = torch.arange(1, valid.shape[1] + 1, device=valid.device)
    length = (position * valid).amax(1, keepdim=True).clamp(min=1)  # as the CTC input length
    probs = blank_after_end(torch.softmax(logits.float(), -1), position <= length)
    nll = -ctc_log_likelihood(probs, phrases.unsqueeze(1))[:, 0]
    repeats = (chars[:, 1:] & chars[:, :-1] & (target[:, 1:] == target[:, :-1])).sum(1)
    fits = chars.sum(1) + repeats <= length[:, 0]
    return torch.where(fits, nll, torch.zeros_like(nll))


def phrase_log_prob(logits: Tensor, phrases: Tensor) -> Tensor:
    """Sum of log-softmax(logits) at each phrase token up to its eos: (..., L, V), (..., L)
    float tokens in :func:`compact`'s layout -> (...)."""
    classes = torch.arange(logits.shape[-1], dtype=torch.float32, device=logits.device)
    onehot = ((phrases.unsqueeze(-1) - classes) ** 2 < 0.25).to(torch.float32)
    onehot = onehot * ((phrases - vocab.PAD) ** 2 > 0.25).to(torch.float32).unsqueeze(-1)
    return (torch.log_softmax(logits.float(), -1) * onehot).sum((-1, -2))


def blank_after_end(probs: Tensor, inside: Tensor) -> Tensor:
    """Frames outside the sequence (``inside`` False) become the blank with probability 1."""
    blank = F.one_hot(torch.tensor(vocab.PAD), probs.shape[-1]).to(probs)
    return torch.where(inside.unsqueeze(-1), probs, blank)


def decode_every(net: nn.Module, landmarks: Tensor) -> dict[str, Tensor]:
    """Every decoding of :class:`aslfs_pl.model.seq2seq.Seq2Seq` from one encoder pass and one
    greedy loop: ``DECODINGS`` -> (B, K) token rows. ``joint`` is built from the other two."""
    memory, valid = net.encode(landmarks)
    length = net.config.max_target_len
    attention, _ = net.decoder.greedy(memory, valid)  # (B, L)
    ctc_logits = net.ctc(memory)
    ctc = ctc_greedy(ctc_logits, valid)  # (B, T)
    ended = torch.cumsum(attention == vocab.EOS, 1) > 0
    keep_a = ((attention < vocab.NUM_CHARACTERS) & ~ended).float()
    slots = torch.arange(length, dtype=torch.float32, device=memory.device)
    frames = torch.arange(ctc.shape[1], dtype=torch.float32, device=memory.device)
    phrases = torch.stack(
        [
            torch.stack(
                [
                    compact(a.float(), ka, slots, slots),
                    compact(c.float(), (c != vocab.PAD).float(), frames, slots),
                ]
            )
            for a, ka, c in zip(attention, keep_a, ctc, strict=True)
        ]
    )  # (B, 2, L)
    sos = torch.full_like(phrases[..., :1], vocab.SOS)
    inputs = torch.cat([sos, phrases[..., :-1]], -1).long().flatten(0, 1)  # (2B, L)
    logits = net.decoder(inputs, memory.repeat_interleave(2, 0), valid.repeat_interleave(2, 0))
    att = phrase_log_prob(logits, phrases.flatten(0, 1)).view(-1, 2)
    probs = blank_after_end(torch.softmax(ctc_logits.float(), -1), _inside(valid))
    score = att + JOINT_CTC_WEIGHT * ctc_log_likelihood(probs, phrases)
    choose_ctc = (score[:, 1] > score[:, 0]).unsqueeze(1)
    joint = torch.where(choose_ctc, phrases[:, 1], phrases[:, 0]).long()
    return {"attention": attention, "ctc": ctc, "joint": joint}


def joint_decode(net: nn.Module, landmarks: Tensor) -> Tensor:
    """The ``joint`` decoding of :class:`aslfs_pl.model.seq2seq.Seq2Seq`: (B, L) tokens."""
    return decode_every(net, landmarks)["joint"]


# ---- export twins -------------------------------------------------------------------------------
class CTCExport(ExportForm):
    """:func:`ctc_greedy` for one sequence: encoded frames (n, D) normalised without the
    encoder norm's affine, ``valid`` (n, 1) float, ``j`` (n,) frame indices as float -> per-frame
    logits (n, V) where frames that emit a character keep their logits and every other frame is a
    one-hot pad (Kaggle's argmax decoding drops it)."""

    def __init__(self, head: nn.Linear, memory_norm: nn.LayerNorm):
        super().__init__()
        self.put_linear("head", head, memory_norm)
        pad = torch.zeros(1, head.out_features)
        pad[0, vocab.PAD] = 1e4
        self.put("pad_row", pad)
        self.put("pad", torch.tensor([float(vocab.PAD)]))
        self.put("last_character", const(vocab.NUM_CHARACTERS - 0.5))
        self.put("quarter", const(0.25))
        self.put("one", const(1.0))
        self.put("half_step", const(0.5))

    def emissions(self, memory: Tensor, valid: Tensor, j: Tensor) -> tuple[Tensor, ...]:
        """Logits (n, V), best class (n,) as float, emitting frames (n,) bool, frames up to the
        last valid one (n,) bool."""
        logits = linear(memory, self.weights("head"))  # (n, V)
        best = torch.topk(logits, 1).indices[:, 0].to(torch.float32)  # (n,)
        step = best - torch.cat([self.pad, best[:-1]], 0)
        last = torch.topk(((j + self.one) * valid[:, 0]).unsqueeze(0), 1).values[0]  # (1,)
        inside = j < last - self.half_step
        emit = inside & (best < self.last_character) & (step * step > self.quarter)
        return logits, best, emit, inside

    def forward(self, memory: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        logits, _, emit, _ = self.emissions(memory, valid, j)
        return torch.where(emit.unsqueeze(1), logits, self.pad_row)


class JointExport(ExportForm):
    """:func:`joint_decode` for one sequence -> (L, V) one-hot rows of the chosen phrase (its eos
    and pad rows decode to nothing). The frames are padded to ``max_frames`` rows of blank for the
    CTC forward algorithm, whose loop is unrolled over that static count."""

    def __init__(self, net: nn.Module):
        super().__init__()
        cfg = net.config
        self.frames = cfg.max_frames
        length = self.length = cfg.max_target_len
        self.decoder = export_form(net.decoder, net.encoder.norm)
        self.ctc = CTCExport(net.ctc, net.encoder.norm)
        self.put("slots", torch.arange(length, dtype=torch.float32))
        self.put("positions", torch.arange(length).repeat(2))
        causal = torch.tril(torch.ones(length, length))
        self.put("self_bias", attention_bias(torch.block_diag(causal, causal)))
        self.put("through", torch.triu(torch.ones(length, length)))  # [s, t]: s <= t
        blank = torch.zeros(1, cfg.vocab_size)
        blank[0, vocab.PAD] = 1.0
        self.put("blank", blank)
        self.put("blank_block", blank.repeat(cfg.max_frames, 1))
        self.put("sos", torch.tensor([float(vocab.SOS)]))
        self.put("eos", const(float(vocab.EOS)))
        self.put("classes", torch.arange(cfg.vocab_size, dtype=torch.float32))

    def forward(self, memory: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        cross = self.decoder.cross(memory, valid, j)
        _, attention = self.decoder.greedy(cross)  # (L,) float
        logits, best, emit, inside = self.ctc.emissions(memory, valid, j)
        is_end = ((attention - self.eos) ** 2 < 0.25).to(torch.float32)
        open_ = (is_end.unsqueeze(0) @ self.through)[0] < 0.5  # no eos at or before step t
        keep_a = (open_ & (attention < vocab.NUM_CHARACTERS - 0.5)).to(torch.float32)
        phrases = torch.stack([
            compact(attention, keep_a, self.slots, self.slots),
            compact(best, emit.to(torch.float32), j, self.slots),
        ])  # fmt: skip  # (2, L)
        sos = self.sos.expand(2, 1)
        inputs = torch.cat([sos, phrases[:, :-1]], 1).reshape(-1).to(torch.int32)  # (2L,)
        scored = self.decoder.teacher_forced(inputs, self.positions, self.self_bias, cross)
        att = phrase_log_prob(scored.reshape(2, self.length, -1), phrases)  # (2,)
        probs = torch.where(inside.unsqueeze(1), torch.softmax(logits, -1), self.blank)
        probs = torch.cat([probs, self.blank_block], 0)[: self.frames]  # (F, V)
        ctc = ctc_log_likelihood(probs.unsqueeze(0), phrases.unsqueeze(0))[0]  # (2,)
        score = att + JOINT_CTC_WEIGHT * ctc
        chosen = torch.where(score[1:] > score[:1], phrases[1], phrases[0])  # (L,)
        return ((chosen.unsqueeze(1) - self.classes) ** 2 < 0.25).to(torch.float32) * 1e4
