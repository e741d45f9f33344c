"""CTC over the encoder's per-frame head (Graves et al. 2006): the head, greedy read-out, the
forward algorithm, and a loss built from it.

Written once, with ops that lower to TFLite, and used by the training loss
(:func:`ctc_loss_unrolled` on torch-xla), by the ``ctc``, ``joint`` and ``beam`` decodings and by their
export forms (:mod:`aslfs_pl.model.decoding`). The blank is pad; sos/eos are never CTC targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules import rnn

from aslfs_pl import vocab
from aslfs_pl.export_ops import ExportForm, const, fold_norm, linear
from aslfs_pl.model.regularisation import Dropout

_TINY = 1e-30  # floor of a probability before its log (an impossible alignment)


class LinearCTCHead(nn.Linear):
    """The per-frame head: one linear layer, encoded frames (..., D) -> logits (..., V)."""

    def export_form(self, memory_norm: nn.Module, frames: int) -> LinearCTCHeadExport:
        return LinearCTCHeadExport(self, memory_norm)


class LinearCTCHeadExport(ExportForm):
    """:class:`LinearCTCHead` on frames normalised without ``memory_norm``'s affine (folded)."""

    def __init__(self, head: LinearCTCHead, memory_norm: nn.Module):
        super().__init__()
        self.put_linear("head", head, memory_norm)

    def forward(self, memory: Tensor) -> Tensor:
        return linear(memory, self.weights("head"))


class GRUCTCHead(nn.Module):
    """The 2nd place's per-frame head: a GRU over the encoded frames (forward in time, so a
    frame's output never reads a later one), then two dense layers (D -> 2D -> V, no
    activation between them, dropout before the second)."""

    def __init__(self, dim: int, vocab_size: int, dropout: float = 0.5):
        super().__init__()
        # torch's own GRU class: importing torch-xla replaces ``nn.GRU`` by a scan-based GRU
        # that takes XLA tensors in (frames, batch) order only
        self.gru = rnn.GRU(dim, dim, batch_first=True)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.dropout = Dropout(dropout)
        self.fc2 = nn.Linear(2 * dim, vocab_size)

    def forward(self, memory: Tensor) -> Tensor:  # (B, T, D) -> (B, T, V)
        states, _ = self.gru(memory)
        return self.fc2(self.dropout(self.fc1(states)))

    def export_form(self, memory_norm: nn.Module, frames: int) -> GRUCTCHeadExport:
        return GRUCTCHeadExport(self, memory_norm, frames)


class GRUCTCHeadExport(ExportForm):
    """:class:`GRUCTCHead` on (n, D) frames normalised without ``memory_norm``'s affine (folded
    into the GRU's input weights). The recurrence is unrolled over ``frames`` rows (the encoded
    rows of max_frames frames): the frames, then zeros (a GRU step cannot take a symbolic
    count); each of the n rows reads its frame's output (rows from ``frames`` on are invalid
    frames, never emitted).

    The unrolled steps are most of an ensemble's graph, so each step is written in few ops: the
    input projections of every row are made before the loop and split into rows once; the
    reset and update gates share one projection of the state (their hidden biases folded into
    the input biases) and one sigmoid; the new state is ``n + z (h - n)``."""

    def __init__(self, head: GRUCTCHead, memory_norm: nn.Module, frames: int):
        super().__init__()
        gru, self.frames = head.gru, frames
        d = self.dim = gru.hidden_size

        class Input:  # the GRU's input weights as a layer, to fold the norm's affine
            weight, bias = gru.weight_ih_l0, gru.bias_ih_l0

        weight, bias = fold_norm(Input, memory_norm)  # (3D, D), (3D,): r, z, n parts
        hidden_w, hidden_b = gru.weight_hh_l0, gru.bias_hh_l0
        self.put_weights("input_rz", weight[: 2 * d], bias[: 2 * d] + hidden_b[: 2 * d])
        self.put_weights("input_n", weight[2 * d :], bias[2 * d :])
        self.put("hidden_rz_wt", hidden_w[: 2 * d].t())
        self.put_weights("hidden_n", hidden_w[2 * d :], hidden_b[2 * d :])
        self.put_weights("fc1", head.fc1.weight, head.fc1.bias)
        self.put_weights("fc2", head.fc2.weight, head.fc2.bias)
        self.put("start", torch.zeros(1, d))
        self.put("last_row", const(frames - 1.0))
        self.covers(gru, head.fc1, head.fc2, memory_norm)

    def forward(self, memory: Tensor) -> Tensor:
        zeros = self.start.expand(self.frames, self.dim)  # made at run time, not stored
        rows = torch.cat([memory, zeros], 0)[: self.frames]  # (F, D)
        inputs_rz = linear(rows, self.weights("input_rz")).split(1, 0)  # F x (1, 2D)
        inputs_n = linear(rows, self.weights("input_n")).split(1, 0)  # F x (1, D)
        h, states = self.start, []
        for x_rz, x_n in zip(inputs_rz, inputs_n, strict=True):
            r, z = torch.sigmoid(x_rz + h @ self.hidden_rz_wt).split(self.dim, 1)
            n = torch.tanh(x_n + r * linear(h, self.weights("hidden_n")))
            h = n + z * (h - n)
            states.append(h)
        out = linear(linear(torch.cat(states, 0), self.weights("fc1")), self.weights("fc2"))
        j = torch.arange(0, memory.shape[0], 1).to(torch.float32)
        return F.embedding(torch.minimum(j, self.last_row).to(torch.int32), out)  # (n, V)


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
    emit = frames_inside(valid) & (best < vocab.NUM_CHARACTERS) & (best != previous)
    return torch.where(emit, best, torch.full_like(best, vocab.PAD))


def frames_inside(valid: Tensor) -> Tensor:
    """(B, T) frames up to the last valid one."""
    position = torch.arange(1, valid.shape[1] + 1, device=valid.device)
    return position <= (position * valid).amax(1, keepdim=True)


def blank_after_end(probs: Tensor, inside: Tensor) -> Tensor:
    """Frames outside the sequence (``inside`` False) become the blank with probability 1."""
    blank = F.one_hot(torch.tensor(vocab.PAD), probs.shape[-1]).to(probs)
    return torch.where(inside.unsqueeze(-1), probs, blank)


def ctc_log_likelihood(probs: Tensor, phrases: Tensor) -> Tensor:
    """log P(phrase | frames) under CTC (the forward algorithm), for several phrases at once.

    A product of per-frame transition matrices, renormalised every frame (so no log-space
    arithmetic is needed), unrolled over the static frame count F.

    Args:
        probs: (B, F, V) per-frame class probabilities; frames after the sequence must be the
            blank (pad) with probability 1.
        phrases: (B, H, L) float tokens in the decoder's layout: characters, eos, pad
            (:func:`aslfs_pl.model.decoding.joint.compact`).

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


def ctc_loss(ctc_logits: Tensor, valid: Tensor, target: Tensor) -> Tensor:
    """The training loss of the CTC head: (B, T, V) logits, (B, T) frame mask, (B, L) target
    tokens -> CTC over the frames up to the last valid one (blank = pad), summed over rows / the
    number of target characters. torch's kernel, or :func:`ctc_loss_unrolled` on torch-xla, which
    has none (it stays in the step's graph)."""
    chars = target < vocab.NUM_CHARACTERS  # (B, L): the phrase, not eos/pad
    target_lengths = chars.sum(1)
    if ctc_logits.device.type == "xla":
        per_row = ctc_loss_unrolled(ctc_logits, valid, target)
    else:
        t = valid.shape[1]
        position = torch.arange(1, t + 1, device=valid.device)
        input_lengths = (position * valid).amax(1).clamp(min=1)  # up to the last real frame
        log_probs = F.log_softmax(ctc_logits.float(), -1).transpose(0, 1)  # (T, B, V)
        per_row = F.ctc_loss(
            log_probs,
            torch.where(chars, target, 0),
            input_lengths,
            target_lengths,
            blank=vocab.PAD,
            reduction="none",
            zero_infinity=True,
        )
    per_row = torch.where(target_lengths > 0, per_row, torch.zeros_like(per_row))
    return per_row.sum() / target_lengths.sum().clamp(min=1)
