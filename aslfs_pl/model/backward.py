"""The backward decoder's targets: each phrase read right to left (the 1st place's auxiliary
loss).

A second decoder, trained beside the first on the same encoded frames, reads the phrase from its
last character to its first; its cross-entropy joins the loss with weight ``backward_weight``
(:class:`aslfs_pl.task.Seq2SeqTask`), which trains the encoder to keep what the end of a phrase
needs too. Only training reads it: the read-outs and the TFLite file use the forward decoder.
The frames are not flipped: cross-attention has no frame positions, so a flipped memory reads
the same.
"""

from __future__ import annotations

import torch
from torch import Tensor

from aslfs_pl import vocab


def reverse_phrases(tokens: Tensor) -> Tensor:
    """(B, L) token rows ``sos, c1 .. cn, eos, pad ...`` -> ``sos, cn .. c1, eos, pad ...``
    (fixed shapes, no host sync: one gather)."""
    chars = (tokens < vocab.NUM_CHARACTERS) & (tokens != vocab.PAD)  # (B, L)
    count = chars.sum(1, keepdim=True)  # (B, 1) characters in each row
    slot = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)  # (1, L)
    # slot 1 + i (i < n) takes character n - 1 - i, which sits at slot n - i
    source = torch.where((slot >= 1) & (slot <= count), count + 1 - slot, slot)
    return torch.gather(tokens, 1, source)
