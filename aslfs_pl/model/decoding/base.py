"""What a decoding is, and the registry of them.

A decoding is one object (a :class:`Decoding` subclass, registered with :func:`register`) that
says everything the project needs to know about one way of reading a phrase out of the network:

* :meth:`Decoding.read`: the PyTorch read-out, (B, K) token rows whose
  :func:`aslfs_pl.vocab.decode` is the phrase, from an :class:`Encoded` batch (one encoder pass
  that several decodings share, so validation scores all of them at the cost of one);
* :meth:`Decoding.export_head`: its deployment form, the part of the TFLite graph after the
  encoder, built from the trained network (:mod:`aslfs_pl.export_ops`);
* :meth:`Decoding.parity_row` and :meth:`Decoding.near_ties`: how the TFLite file's outputs are
  compared with the PyTorch read-out, and when a flipped near tie is allowed;
* :attr:`Decoding.needs_ctc`: whether it reads the CTC head (the task refuses it otherwise).

Each decoding lives in a module of this package of its own; every module of the package is
imported (and so registered) when the package is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.export_ops import ExportForm


@dataclass
class ParityRow:
    """One input length: the TFLite file's read-out against PyTorch's."""

    frames: int
    same_text: bool
    max_diff: float  # max |logit difference| over the rows both sides computed from one prefix
    diverged_at: int | None  # first row whose token differs (None: same tokens to the end)
    margin: float  # PyTorch's margin between its token and TFLite's there (0 if none)


class Encoded:
    """One encoder pass over a batch, read by one or more decodings.

    What a decoding computes from it that another one reads too (the greedy loop, the CTC
    logits, a decoding's own tokens) is computed once, by :meth:`once`.
    """

    def __init__(self, net: nn.Module, landmarks: Tensor):
        self.net = net
        self.memory, self.valid = net.encode(landmarks)  # (B, T, D), (B, T)
        self._done: dict[str, Any] = {}

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, run on the first call for ``key`` only."""
        if key not in self._done:
            self._done[key] = compute()
        return self._done[key]

    def greedy(self) -> tuple[Tensor, Tensor]:
        """The attention decoder's greedy tokens (B, L) and their logits (B, L, V)."""
        return self.once("greedy", lambda: self.net.decoder.greedy(self.memory, self.valid))

    def ctc_logits(self) -> Tensor:
        """The CTC head's per-frame logits (B, T, V)."""
        return self.once("ctc_logits", lambda: self.net.ctc(self.memory))

    def tokens(self, decoding: str) -> Tensor:
        """The token rows of the registered ``decoding`` (computed once)."""
        return self.once(f"tokens:{decoding}", lambda: get(decoding).read(self))


class Decoding:
    """One way of reading a phrase out of the network (see the module doc)."""

    name: ClassVar[str]
    """The ``model.decoding`` value (and ``--decoding`` of the export) that selects it."""
    summary: ClassVar[str]
    """One line for help texts: what it reads and what the TFLite file's output rows hold."""
    needs_ctc: ClassVar[bool] = False
    """Reads the CTC head (the network must be trained with ``model.ctc_weight > 0``)."""
    phrase_rows: ClassVar[bool] = True
    """Its rows are phrase positions (``max_target_len`` of them), so the confidence fallback
    (:mod:`aslfs_pl.model.fallback`) can replace them by the fallback phrase."""

    def check(self, net: nn.Module) -> None:
        """Refuse a network this decoding cannot read (one line naming the setting)."""
        if self.needs_ctc and getattr(net, "ctc", None) is None:
            raise ValueError(
                f"{self.name} decoding needs the CTC head: train with model.ctc_weight > 0"
            )

    def read(self, encoded: Encoded) -> Tensor:
        """(B, K) token rows; pad, sos and everything from eos on decode to nothing."""
        raise NotImplementedError

    def export_head(self, net: nn.Module) -> ExportForm:
        """The deployment form after the encoder: ``(memory (n, D) normalised without the
        encoder norm's affine, valid (n, 1) float, j (n,) float) -> output rows (K, V)`` decoded
        by Kaggle's per-row argmax. It covers (:meth:`ExportForm.covers`) every weight of the
        decoder and the CTC head, reading them or deliberately leaving them out."""
        raise NotImplementedError

    def parity_row(self, net: nn.Module, frames: int, out: np.ndarray, padded: Tensor) -> ParityRow:
        """The TFLite file's ``out`` rows for one input of ``frames`` frames, against this
        decoding in PyTorch on the same input as training sees it (``padded``: (1, F, C))."""
        raise NotImplementedError

    def near_ties(self, weights: str) -> bool:
        """Whether a token may differ at a near tie (margin within the logit tolerance) with
        these stored ``weights``; by default fp16 and int8 weights, whose rounding moves a
        trained network's logits by a few thousandths (fp16) or hundredths (int8): a greedy
        step whose two best logits lie closer than that may flip."""
        return weights != "fp32"


#: Relative weight noise tried, smallest first, by :func:`nudged_margin` (three draws each).
NUDGES = (1e-4, 1e-3, 3e-3, 1e-2)


def nudged_margin(encoded: Encoded, padded: Tensor, decoding: str, text: str) -> float:
    """How far the network's logits must move for the read-out ``decoding`` of ``padded`` (1,
    F, C; ``encoded``: the network's pass over it) to read ``text``: the largest change of its greedy logits (up to the first step
    whose token changes) under the smallest relative weight noise of :data:`NUDGES` with which
    it does (inf when none does). A phrase route's rows carry no logits to compare; a phrase
    the file reads because its rounded weights flipped a near tie is one that noise of the
    rounding's size reads too, and the parity rule compares this margin with the tolerance."""
    tokens, logits = encoded.greedy()
    for scale in NUDGES:
        for seed in range(3):
            nudged = copy.deepcopy(encoded.net)
            noise = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for p in nudged.parameters():
                    p.mul_(1.0 + scale * torch.randn(p.shape, generator=noise))
                encoded = Encoded(nudged, padded)
                if vocab.decode(encoded.tokens(decoding)[0].tolist()) != text:
                    continue
                moved_tokens, moved = encoded.greedy()
            turned = torch.nonzero(moved_tokens[0] != tokens[0])
            upto = int(turned[0, 0]) + 1 if turned.numel() else tokens.shape[1]
            return float((moved[0, :upto] - logits[0, :upto]).abs().max())
    return float("inf")


DECODINGS: dict[str, Decoding] = {}
"""The registered decodings, by name."""


def register(cls: type[Decoding]) -> type[Decoding]:
    """Class decorator: add a decoding to :data:`DECODINGS`."""
    if cls.name in DECODINGS:
        raise ValueError(f"decoding {cls.name!r} is registered twice")
    DECODINGS[cls.name] = cls()
    return cls


def get(name: str) -> Decoding:
    """The registered decoding ``name``, or a ValueError listing the choices."""
    try:
        return DECODINGS[name]
    except KeyError:
        raise ValueError(f"decoding {name!r}: choose one of {', '.join(DECODINGS)}") from None


def usable(net: nn.Module) -> list[str]:
    """The decodings ``net`` can run (those needing the CTC head only when it has one)."""
    return [name for name, d in DECODINGS.items() if not d.needs_ctc or net.ctc is not None]
