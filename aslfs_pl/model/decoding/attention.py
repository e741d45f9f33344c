"""``attention``: the decoder's greedy loop, one step per character (the seed's read-out)."""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.export_ops import ExportForm, export_form
from aslfs_pl.model.decoding.base import Decoding, Encoded, ParityRow, register


@register
class AttentionGreedy(Decoding):
    """Greedy decoding with the attention decoder and its KV cache
    (:meth:`aslfs_pl.model.decoder.Decoder.greedy`).

    TFLite rows: ``max_target_len`` rows, row t the decoder's logits at step t; rows after the
    end token a one-hot pad. Parity: the logits within the tolerance up to PyTorch's end token,
    or up to the first step where the two pick different tokens (after it they read different
    prefixes); at fp32 the tokens must be equal, fp16 and int8 may flip a near tie (PyTorch's
    own margin between the two tokens within the tolerance).
    """

    name = "attention"
    summary = "the attention decoder's greedy loop, one step per character"

    def read(self, encoded: Encoded) -> Tensor:
        return encoded.greedy()[0]

    def export_head(self, net: nn.Module) -> ExportForm:
        head = export_form(net.decoder, net.memory_norm)
        if net.ctc is not None:
            head.covers(*net.ctc.modules())  # not read by this decoding
        return head

    def parity_row(self, net: nn.Module, frames: int, out: np.ndarray, padded: Tensor) -> ParityRow:
        tokens, logits = Encoded(net, padded).greedy()
        return compare_steps(frames, out, tokens[0].numpy(), logits[0].numpy())


def compare_steps(
    frames: int, out: np.ndarray, ref_tokens: np.ndarray, ref_logits: np.ndarray
) -> ParityRow:
    """TFLite outputs (L, K) vs PyTorch's greedy tokens (L,) and logits (L, V) for one input."""
    picked = np.argmax(out, 1)
    same = vocab.decode_kaggle(picked) == vocab.decode(ref_tokens)
    compared = ~(np.cumsum(ref_tokens == vocab.EOS) - (ref_tokens == vocab.EOS) > 0)
    differ = np.flatnonzero(compared & (picked != ref_tokens))
    diverged_at, margin = None, 0.0
    if differ.size:
        diverged_at = int(differ[0])
        compared[diverged_at + 1 :] = False
        step = ref_logits[diverged_at]
        margin = float(step[ref_tokens[diverged_at]] - step[picked[diverged_at]])
    v = ref_logits.shape[1]
    diff = np.abs(out[compared, :v] - ref_logits[compared])
    return ParityRow(
        frames, bool(same), float(diff.max()) if diff.size else 0.0, diverged_at, margin
    )
