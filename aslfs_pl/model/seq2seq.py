"""The encoder-decoder: raw landmark frames in, character logits out.

(B, T, C) raw columns (NaN = unseen or padding)
  -> (optional) left-hander flip                 (B, T, C)  aslfs_pl.model.handedness
  -> stem ("embedding"): features, frame mask,   (B, T, D)  aslfs_pl.model.stems
     dense, BN, causal conv + ECA (model.stem)
  -> encoder family (model.encoder):             (B, T, D)  aslfs_pl.model.encoders
     local / global attention, Conformer, ...
  -> decoder over (B, L) tokens                  (B, L, V)
     (training: a backward decoder, the phrases right to left, aslfs_pl.model.backward)
  -> (optional) CTC head over the frames         (B, T, V)
  -> (optional) confidence head, fallback phrase aslfs_pl.model.fallback

The shape is :class:`aslfs_pl.model.config.ModelConfig`; how a phrase is read out (one registered
object per decoding): :mod:`aslfs_pl.model.decoding`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import NamedTuple

import torch
from torch import Tensor, nn

from aslfs_pl.export_ops import ExportForm, export_form
from aslfs_pl.model import decoding
from aslfs_pl.model.config import ModelConfig
from aslfs_pl.model.ctc_head import GRUCTCHead, LinearCTCHead
from aslfs_pl.model.decoder import Decoder
from aslfs_pl.model.encoders import ENCODERS
from aslfs_pl.model.fallback import ConfidenceHead, Fallback
from aslfs_pl.model.handedness import LeftHandFlip
from aslfs_pl.model.layers import Attention
from aslfs_pl.model.stems import STEMS


class TrainingOutputs(NamedTuple):
    """What a training step reads from one forward pass."""

    logits: Tensor  # (B, L, V) teacher-forced decoder logits
    ctc: Tensor | None  # (B, T, V) per-frame CTC logits (with the CTC head)
    valid: Tensor  # (B, T) frame mask
    confidence: Tensor | None  # (B,) confidence logits (with the confidence head)
    backward: Tensor | None = None  # (B, L, V) the backward decoder's logits (with it)


class Seq2Seq(nn.Module):
    """Pre-norm encoder-decoder over landmark frames."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c = self.config = config
        self.flip = LeftHandFlip(c.hand_columns) if c.flip_left_handed else None
        self.embedding = STEMS.get(c.stem)(c)  # the stem
        self.encoder = ENCODERS.get(c.encoder)(c)
        self.decoder = self._decoder()
        self.backward_decoder = None
        if c.backward_decoder:  # training only (aslfs_pl.model.backward)
            self.backward_decoder = self._decoder()
        if c.attention_dropout is not None:  # whichever part holds an attention layer
            for layer in self.modules():
                if isinstance(layer, Attention):
                    layer.dropout.p = c.attention_dropout
        self.ctc = None
        if c.ctc_head:
            self.ctc = (GRUCTCHead if c.ctc_gru else LinearCTCHead)(c.dim, c.vocab_size)
        self.confidence = ConfidenceHead(c.dim) if c.confidence_head else None
        self.fallback = None
        if c.fallback_frames > 0 or c.fallback_confidence > 0:
            self.fallback = Fallback(
                c.fallback_phrase, c.fallback_frames, c.fallback_confidence, c.max_target_len
            )

    def _decoder(self) -> Decoder:
        c = self.config
        return Decoder(
            c.dim,
            c.heads,
            c.mlp_ratio,
            c.decoder_blocks,
            c.vocab_size,
            c.max_target_len,
            c.dropout,
            rotary=c.decoder_rotary,
            mlp_hidden=c.decoder_mlp,
        )

    def encode(self, landmarks: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, C) raw frames -> encoded frames (B, T, D) and frame mask (B, T)."""
        if self.flip is not None:
            landmarks = self.flip(landmarks)
        x, valid = self.embedding(landmarks)
        return self.encoder(x, valid), self.encoder.output_mask(valid)

    def forward(self, landmarks: Tensor, tokens: Tensor) -> Tensor:
        """Teacher-forced logits (B, L, V) for decoder input ``tokens`` (B, L)."""
        memory, valid = self.encode(landmarks)
        return self.decoder(tokens, memory, valid)

    def forward_train(
        self, landmarks: Tensor, tokens: Tensor, reversed_tokens: Tensor | None = None
    ) -> TrainingOutputs:
        """Teacher-forced logits for decoder input ``tokens`` (B, L), and every head's output
        (the backward decoder's on ``reversed_tokens``, the phrases right to left)."""
        memory, valid = self.encode(landmarks)
        ctc = self.ctc(memory) if self.ctc is not None else None
        confidence = self.confidence(memory, valid) if self.confidence is not None else None
        backward = None
        if self.backward_decoder is not None and reversed_tokens is not None:
            backward = self.backward_decoder(reversed_tokens, memory, valid)
        logits = self.decoder(tokens, memory, valid)
        return TrainingOutputs(logits, ctc, valid, confidence, backward)

    def generate(self, landmarks: Tensor, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """Greedy decode: tokens (B, steps) and their logits (B, steps, V)."""
        memory, valid = self.encode(landmarks)
        return self.decoder.greedy(memory, valid, steps)

    def decode(self, landmarks: Tensor, name: str = "attention") -> Tensor:
        """Token rows (B, K) of the registered decoding ``name``, whose
        :func:`aslfs_pl.vocab.decode` is the predicted phrase."""
        method = decoding.get(name)
        method.check(self)
        encoded = decoding.Encoded(self, landmarks)
        return self._fall_back(name, encoded.tokens(name), encoded)

    def decode_every(self, landmarks: Tensor) -> dict[str, Tensor]:
        """The token rows of every decoding this network can run, from one encoder pass (what
        one decoding computes and another reads, such as the greedy loop, runs once)."""
        encoded = decoding.Encoded(self, landmarks)
        return {
            name: self._fall_back(name, encoded.tokens(name), encoded)
            for name in decoding.usable(self)
        }

    def hopeless(self, encoded: decoding.Encoded) -> Tensor:
        """(B,) bool: the sequences the fallback (which this network must have) replaces; the
        confidence head runs only when the confidence rule is on."""
        confidence = None
        if self.fallback.min_confidence > 0:
            confidence = torch.sigmoid(self.confidence(encoded.memory, encoded.valid))
        return self.fallback.hopeless(encoded.valid, confidence)

    def _fall_back(self, name: str, tokens: Tensor, encoded: decoding.Encoded) -> Tensor:
        """``tokens`` of decoding ``name`` with the hopeless rows replaced (decodings whose rows
        are phrase positions; the ``ctc`` route's are frames)."""
        if self.fallback is None or not decoding.get(name).phrase_rows:
            return tokens
        return self.fallback.apply(tokens, encoded.once("hopeless", lambda: self.hopeless(encoded)))

    @property
    def memory_norm(self) -> nn.Module:
        """The encoder's last norm, whose affine the heads' export forms fold (they read its
        output normalised without it)."""
        return self.encoder.norm

    @property
    def memory_rows(self) -> int:
        """The most encoded rows of a sequence's real frames in the export (``max_frames``
        unless the encoder changes the frame rate): what the heads unroll over."""
        return max(
            encoder.encoded_rows(self.config.max_frames) for _, encoder in self.memory_parts()
        )

    def memory_parts(self) -> list[tuple[nn.Module, nn.Module]]:
        """(stem, encoder) of each network whose encoded frames ``encode`` concatenates: this
        one's only (an ensemble's: each member's)."""
        return [(self.embedding, self.encoder)]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def hparams(self) -> dict:
        return asdict(self.config)

    def export_form(self, decoding: str = "attention") -> Seq2SeqExport:
        return Seq2SeqExport(self, decoding)


class Seq2SeqExport(ExportForm):
    """The network's deployment twin for one sequence: (n, C) raw rows and their frame indices
    j (n,) as float -> the output rows of the registered decoding ``name`` (its
    :meth:`~aslfs_pl.model.decoding.Decoding.export_head`).

    The frame axis is symbolic; rows whose landmarks are all NaN are invalid frames (see
    :mod:`aslfs_pl.deploy.graph` for how the Kaggle input becomes these rows).
    """

    def __init__(self, net: Seq2Seq, name: str = "attention"):
        super().__init__()
        method = decoding.get(name)
        method.check(net)
        parts = net.memory_parts()
        # an ensemble's members flip alike (ensemble.check_members): the first one's, once
        flips = [m for m in net.modules() if isinstance(m, LeftHandFlip)]
        self.flip = export_form(flips[0]) if flips else None
        self.covers(*flips)
        self.embeddings = nn.ModuleList(export_form(stem) for stem, _ in parts)
        self.encoders = nn.ModuleList(export_form(encoder) for _, encoder in parts)
        self.head = method.export_head(net)
        self.fallback = None
        confidence = None
        if net.fallback is not None and method.phrase_rows:
            if net.fallback.min_confidence > 0:
                confidence = export_form(net.confidence, net.memory_norm)
            self.fallback = export_form(net.fallback, confidence, net.config.vocab_size)
        if confidence is None:  # trained, not read by this route
            self.covers(*(m.proj for m in net.modules() if isinstance(m, ConfidenceHead)))
        for part in net.modules():  # trained beside the decoder, read by no route
            if isinstance(part, Seq2Seq) and part.backward_decoder is not None:
                self.covers(*part.backward_decoder.modules())
        # the ctc route's rows are frames (no fallback); an ensemble reads its first member's
        self.covers(*(m for m in net.modules() if isinstance(m, Fallback)))

    def forward(self, x: Tensor, j: Tensor) -> Tensor:
        memories, rows = [], j
        if self.flip is not None:
            x = self.flip(x)
        for embedding, encoder in zip(self.embeddings, self.encoders, strict=True):
            embedded, valid = embedding(x, rows)  # (n, D), (n, 1): the same for every part
            encoded = encoder(embedded, valid, rows)
            if isinstance(encoded, tuple):  # a family that changes the frame rate
                encoded, valid, j = encoded
            memories.append(encoded)
        memory = torch.cat(memories, 1) if len(memories) > 1 else memories[0]  # (m, D)
        out = self.head(memory, valid, j)  # (K, V)
        if self.fallback is not None:
            out = self.fallback(out, memory, valid, j)
        return out
