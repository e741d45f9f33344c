"""Networks ensembled in one: the members' per-step log-probabilities averaged.

``Ensemble([net_a, net_b, ...])`` reads phrases as one network does (every decoding, the export
and its parity check take it in place of a :class:`~aslfs_pl.model.seq2seq.Seq2Seq`), the way the
1st and 2nd places put two or three seeds into one TFLite file:

* each member encodes the frames itself; ``encode`` concatenates their encoded frames along the
  channels (the heads split them again);
* the decoder's step is the mean of the members' log-softmax at that step, after the same
  prefix (the 1st place averaged the logits of their 2 seeds 0.5 / 0.5 at every step, the 2nd
  place the probabilities); greedy, beam search and teacher forcing all read it;
* the CTC head's per-frame output is the mean of the members' log-softmax;
* the confidence (the fallback rule's) is the mean of the members' confidences.

The members must read the same frames and write the same vocabulary (landmark columns, frames,
phrase length, classes, stem), have a CTC head all or none, and share the read-out settings
(decoding, beam, fallback); those are the first member's. Inference only.
"""

from __future__ import annotations

from dataclasses import fields

import torch
from torch import Tensor, nn

from aslfs_pl.export_ops import ExportForm, const, export_form, log_softmax
from aslfs_pl.model.config import READ_OUT
from aslfs_pl.model.search import ExportSearch, Search
from aslfs_pl.model.seq2seq import Seq2Seq

#: Settings every member must share: what the frames and phrases are.
SHARED = (
    "num_columns", "num_axes", "vocab_size", "max_frames", "max_target_len", "stem",
    "flip_left_handed",
)  # fmt: skip


class Ensemble(Seq2Seq):
    """See the module doc. ``members``: trained networks (eval mode)."""

    def __init__(self, members: list[Seq2Seq]):
        nn.Module.__init__(self)
        check_members(members)
        self.members = nn.ModuleList(members)
        self.config = members[0].config
        dims = [m.config.dim for m in members]
        self.decoder = EnsembleDecoder([m.decoder for m in members], dims)
        self.ctc = None
        if members[0].ctc is not None:
            self.ctc = EnsembleCTC([m.ctc for m in members], dims)
        self.confidence = self.backward_decoder = None
        self.flip = None  # each member flips its own input (Seq2Seq.encode)
        if all(m.confidence is not None for m in members):
            self.confidence = EnsembleConfidence([m.confidence for m in members], dims)
        self.fallback = members[0].fallback

    def encode(self, landmarks: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, C) raw frames -> every member's encoded frames, concatenated (B, T, sum D),
        and the frame mask (B, T) (the same for every member: the same stem)."""
        encoded = [m.encode(landmarks) for m in self.members]
        if len({memory.shape[1] for memory, _ in encoded}) > 1:
            raise ValueError("ensemble members encode the frames at different rates")
        return torch.cat([memory for memory, _ in encoded], -1), encoded[0][1]

    def forward(self, landmarks: Tensor, tokens: Tensor) -> Tensor:
        raise TypeError("an ensemble reads phrases out; train its members one by one")

    forward_train = forward

    @property
    def memory_norm(self) -> nn.ModuleList:
        return nn.ModuleList(m.memory_norm for m in self.members)

    def memory_parts(self) -> list[tuple[nn.Module, nn.Module]]:
        return [part for m in self.members for part in m.memory_parts()]


def check_members(members: list[Seq2Seq]) -> None:
    """Raise ValueError naming the first setting the members do not share (module doc)."""
    if not members:
        raise ValueError("an ensemble needs at least one network")
    first = members[0].config
    for i, member in enumerate(members[1:], 2):
        c = member.config
        for name in (*SHARED, *READ_OUT):
            if name in {f.name for f in fields(c)} and getattr(c, name) != getattr(first, name):
                raise ValueError(
                    f"ensemble member {i}: model.{name} {getattr(c, name)!r}, member 1 "
                    f"{getattr(first, name)!r} (members share {', '.join(SHARED)} and the "
                    "read-out settings)"
                )
        if c.flip_left_handed and c.hand_columns != first.hand_columns:
            raise ValueError(
                f"ensemble member {i}: another landmark set to flip (model.hand_columns)"
            )
        if (member.ctc is None) != (members[0].ctc is None):
            raise ValueError(f"ensemble member {i}: a CTC head in some members only")


def split(memory: Tensor, dims: list[int]) -> list[Tensor]:
    """The members' encoded frames out of ``Ensemble.encode``'s concatenation (slices of the
    channels)."""
    starts = [sum(dims[:i]) for i in range(len(dims))]
    return [memory[..., a : a + d] for a, d in zip(starts, dims, strict=True)]


def export_mean(values: list[Tensor], share: Tensor) -> Tensor:
    """The mean of the members' ``values`` in an export form (a sum times ``share``, 1 / M)."""
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total * share


def mean_log_probs(scores: list[Tensor]) -> Tensor:
    """The mean of the members' log-softmax (each (..., V))."""
    return torch.stack([torch.log_softmax(s.float(), -1) for s in scores]).mean(0)


class EnsembleDecoder(Search, nn.Module):
    """The members' decoders as one (:class:`~aslfs_pl.model.search.Search`): each step's
    scores are their mean log-probabilities."""

    def __init__(self, decoders: list[nn.Module], dims: list[int]):
        super().__init__()
        self.decoders = nn.ModuleList(decoders)
        self.dims = dims
        self.max_target_len = decoders[0].max_target_len

    def forward(self, tokens: Tensor, memory: Tensor, valid: Tensor) -> Tensor:
        parts = split(memory, self.dims)
        return mean_log_probs(
            [d(tokens, m, valid) for d, m in zip(self.decoders, parts, strict=True)]
        )

    def start(self, memory: Tensor, valid: Tensor) -> list:
        return [
            d.start(m, valid) for d, m in zip(self.decoders, split(memory, self.dims), strict=True)
        ]

    def step(self, state: list, token: Tensor, t: int) -> Tensor:
        return mean_log_probs(
            [d.step(s, token, t) for d, s in zip(self.decoders, state, strict=True)]
        )

    def reorder(self, state: list, rows: Tensor) -> None:
        for d, s in zip(self.decoders, state, strict=True):
            d.reorder(s, rows)

    def export_form(
        self, memory_norm: nn.ModuleList, beam_width: int = 0, length_penalty: float = 0.0
    ) -> EnsembleDecoderExport:
        return EnsembleDecoderExport(self, memory_norm, beam_width, length_penalty)


class EnsembleDecoderExport(ExportSearch, ExportForm):
    """:class:`EnsembleDecoder` for one sequence (as
    :class:`~aslfs_pl.model.decoder.DecoderExport`, whose members it holds)."""

    def __init__(
        self,
        dec: EnsembleDecoder,
        memory_norm: nn.ModuleList,
        beam_width: int = 0,
        length_penalty: float = 0.0,
    ):
        super().__init__()
        vocab_size = dec.decoders[0].head.out_features
        self.put_search(dec.max_target_len, vocab_size, beam_width, length_penalty)
        self.members = nn.ModuleList(
            export_form(d, norm) for d, norm in zip(dec.decoders, memory_norm, strict=True)
        )
        self.dims = dec.dims
        self.put("share", const(1.0 / len(dec.dims)))

    def mean(self, scores: list[Tensor]) -> Tensor:
        return export_mean([torch.log_softmax(s, -1) for s in scores], self.share)

    def cross(self, memory: Tensor, valid: Tensor, j: Tensor) -> list:
        parts = split(memory, self.dims)
        return [d.cross(m, valid, j) for d, m in zip(self.members, parts, strict=True)]

    def step(self, state: list, token: Tensor, t: int, self_bias: Tensor | None) -> Tensor:
        return self.mean(
            [d.step(s, token, t, self_bias) for d, s in zip(self.members, state, strict=True)]
        )

    def teacher_forced(
        self, inputs: Tensor, positions: Tensor, self_bias: Tensor, cross: list
    ) -> Tensor:
        """The mean log-probabilities (R, V) of known phrases (``DecoderExport.teacher_forced``)."""
        return self.mean(
            [
                d.teacher_forced(inputs, positions, self_bias, c)
                for d, c in zip(self.members, cross, strict=True)
            ]
        )

    def forward(self, memory: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        return self.greedy_rows(self.cross(memory, valid, j))


class EnsembleCTC(nn.Module):
    """The members' CTC heads as one: encoded frames (..., sum D) -> the mean of their
    per-frame log-softmax (..., V)."""

    def __init__(self, heads: list[nn.Module], dims: list[int]):
        super().__init__()
        self.heads = nn.ModuleList(heads)
        self.dims = dims

    def forward(self, memory: Tensor) -> Tensor:
        parts = split(memory, self.dims)
        return mean_log_probs([h(m) for h, m in zip(self.heads, parts, strict=True)])

    def export_form(self, memory_norm: nn.ModuleList, frames: int) -> EnsembleCTCExport:
        return EnsembleCTCExport(self, memory_norm, frames)


class EnsembleCTCExport(ExportForm):
    """:class:`EnsembleCTC` on frames normalised without each member's norm affine."""

    def __init__(self, head: EnsembleCTC, memory_norm: nn.ModuleList, frames: int):
        super().__init__()
        self.members = nn.ModuleList(
            export_form(h, norm, frames) for h, norm in zip(head.heads, memory_norm, strict=True)
        )
        self.dims = head.dims
        self.put("share", const(1.0 / len(head.dims)))

    def forward(self, memory: Tensor) -> Tensor:
        parts = split(memory, self.dims)
        # frames on the symbolic axis: the export's own log-softmax
        return export_mean(
            [log_softmax(h(m)) for h, m in zip(self.members, parts, strict=True)], self.share
        )


class EnsembleConfidence(nn.Module):
    """The members' confidence heads as one: the logit of the mean of their confidences."""

    def __init__(self, heads: list[nn.Module], dims: list[int]):
        super().__init__()
        self.heads = nn.ModuleList(heads)
        self.dims = dims

    def forward(self, memory: Tensor, valid: Tensor) -> Tensor:
        parts = split(memory, self.dims)
        p = torch.stack(
            [torch.sigmoid(h(m, valid)) for h, m in zip(self.heads, parts, strict=True)]
        )
        p = p.mean(0).clamp(1e-7, 1 - 1e-7)
        return torch.log(p) - torch.log1p(-p)

    def export_form(self, memory_norm: nn.ModuleList) -> EnsembleConfidenceExport:
        return EnsembleConfidenceExport(self, memory_norm)


class EnsembleConfidenceExport(ExportForm):
    """:class:`EnsembleConfidence` for one sequence -> the mean confidence (1, 1)."""

    def __init__(self, head: EnsembleConfidence, memory_norm: nn.ModuleList):
        super().__init__()
        self.members = nn.ModuleList(
            export_form(h, norm) for h, norm in zip(head.heads, memory_norm, strict=True)
        )
        self.dims = head.dims
        self.put("share", const(1.0 / len(head.dims)))

    def forward(self, memory: Tensor, valid: Tensor) -> Tensor:
        parts = split(memory, self.dims)
        return export_mean(
            [h(m, valid) for h, m in zip(self.members, parts, strict=True)], self.share
        )
