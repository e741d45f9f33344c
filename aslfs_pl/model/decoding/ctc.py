"""``ctc``: greedy CTC over the per-frame head, one pass and no loop."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.export_ops import ExportForm, const, export_form
from aslfs_pl.model.ctc_head import ctc_greedy
from aslfs_pl.model.decoding.base import Decoding, Encoded, ParityRow, register


@register
class CTC(Decoding):
    """Greedy CTC (:func:`aslfs_pl.model.ctc_head.ctc_greedy`): each frame's best class, repeats
    merged, blanks dropped.

    TFLite rows: T + 1 rows, a frame's CTC logits where greedy CTC emits a character there and a
    one-hot pad elsewhere. Parity: frame by frame (a frame emits a character or pad); the logits
    where both emit the same character, up to the first frame that differs. Near-tie flips are
    allowed at every weight type: the read-out takes one argmax per frame (hundreds per sequence,
    not one per character), and fp16 rounding (~1e-3) does flip the frames where two classes tie
    within it (measured: 5 of 301 random inputs on an untrained head).
    """

    name = "ctc"
    summary = "greedy CTC over the per-frame head, one pass and no loop"
    needs_ctc = True
    phrase_rows = False

    def read(self, encoded: Encoded) -> Tensor:
        return ctc_greedy(encoded.ctc_logits(), encoded.valid)

    def export_head(self, net: nn.Module) -> ExportForm:
        head = CTCExport(net)
        head.covers(*net.decoder.modules())  # not read by this decoding
        return head

    def parity_row(self, net: nn.Module, frames: int, out: np.ndarray, padded: Tensor) -> ParityRow:
        encoded = Encoded(net, padded)
        tokens, logits = self.read(encoded), encoded.ctc_logits()
        return compare_frames(frames, out, tokens[0].numpy(), logits[0].numpy())

    def near_ties(self, weights: str) -> bool:
        return True


def compare_frames(
    frames: int, out: np.ndarray, ref_tokens: np.ndarray, ref_logits: np.ndarray
) -> ParityRow:
    """TFLite's CTC rows (T + 1, K) vs PyTorch's per-frame tokens (F,) and logits (F, V)."""
    picked = np.argmax(out, 1)
    same = vocab.decode_kaggle(picked) == vocab.decode(ref_tokens)
    m = min(frames, len(ref_tokens))  # frames both sides computed; TFLite's later rows: pad
    ref = np.concatenate([ref_tokens[:m], np.full(len(picked) - m, vocab.PAD)])
    differ = np.flatnonzero(picked != ref)
    diverged_at, margin, upto = None, 0.0, m
    if differ.size:
        diverged_at = upto = int(differ[0])
        if diverged_at < m:  # the emission there depends on this frame's best class and the last
            top2 = np.sort(ref_logits[max(0, diverged_at - 1) : diverged_at + 1], 1)[:, -2:]
            margin = float((top2[:, 1] - top2[:, 0]).min())
        else:
            margin = float("inf")  # a character after the last frame: never a near tie
    both = np.flatnonzero(ref[:upto] != vocab.PAD)
    v = ref_logits.shape[1]
    diff = np.abs(out[both, :v] - ref_logits[both])
    return ParityRow(
        frames, bool(same), float(diff.max()) if diff.size else 0.0, diverged_at, margin
    )


class CTCExport(ExportForm):
    """:func:`aslfs_pl.model.ctc_head.ctc_greedy` for one sequence: encoded frames (n, D) normalised without the
    encoder norm's affine, ``valid`` (n, 1) float, ``j`` (n,) frame indices as float -> per-frame
    logits (n, V) where frames that emit a character keep their logits and every other frame is a
    one-hot pad (Kaggle's argmax decoding drops it)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        # the head's twin: (n, D) -> (n, V)
        self.logits = export_form(net.ctc, net.memory_norm, net.memory_rows)
        pad = torch.zeros(1, net.config.vocab_size)
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
        logits = self.logits(memory)  # (n, V)
        best = torch.topk(logits, 1).indices[:, 0].to(torch.float32)  # (n,)
        step = best - torch.cat([self.pad, best[:-1]], 0)
        last = torch.topk(((j + self.one) * valid[:, 0]).unsqueeze(0), 1).values[0]  # (1,)
        inside = j < last - self.half_step
        emit = inside & (best < self.last_character) & (step * step > self.quarter)
        return logits, best, emit, inside

    def forward(self, memory: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        logits, _, emit, _ = self.emissions(memory, valid, j)
        return torch.where(emit.unsqueeze(1), logits, self.pad_row)
