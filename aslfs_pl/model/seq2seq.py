"""The encoder-decoder: raw landmark frames in, character logits out.

(B, T, C) raw columns (NaN = unseen or padding)
  -> features (B, T, 3C) + frame mask            aslfs_pl.data.features
  -> embedding: dense, BN, causal conv + ECA    (B, T, D)
  -> encoder: blocks of local / global attention (B, T, D)
  -> decoder over (B, L) tokens                  (B, L, V)
  -> (optional) CTC head over the frames         (B, T, V)

Two ways to read a phrase out (``DECODINGS``): ``attention``, the decoder's greedy loop (one step
per character), and ``ctc``, greedy CTC over the per-frame head (one pass, no loop; needs the head).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.data.features import const, frame_features, landmark_features
from aslfs_pl.model.decoder import Decoder
from aslfs_pl.model.encoder import Embedding, Encoder
from aslfs_pl.model.export_ops import ExportForm, export_form, linear

DECODINGS = ("attention", "ctc")


@dataclass
class ModelConfig:
    """Shape of the network. Defaults are the seed design (13-14M parameters at dim 256)."""

    num_columns: int = 176
    """Raw landmark columns per frame (``LandmarkSet.num_columns``)."""
    num_axes: int = 2
    """Axes per landmark (x, y[, z])."""
    vocab_size: int = vocab.VOCAB_SIZE
    """Output classes: 59 characters + pad, start, end."""
    max_frames: int = 384
    """Longest frame axis the positional encoding covers."""
    max_target_len: int = 32
    """Decoder steps (phrase characters + end token)."""
    dim: int = 256
    """Model width."""
    heads: int = 4
    """Attention heads."""
    mlp_ratio: int = 4
    """MLP hidden width / dim."""
    conv_blocks: int = 3
    """Causal conv + ECA blocks in the embedding."""
    conv_kernel: int = 17
    """Depthwise conv kernel (frames)."""
    conv_expand: int = 2
    """Channel expansion inside a conv block."""
    encoder_blocks: int = 6
    """Encoder blocks (each: local layers, one global layer, MLP)."""
    local_layers: int = 3
    """Local causal self-attention layers per encoder block."""
    window: int = 16
    """Frames a local attention layer looks back over (including the current one)."""
    decoder_blocks: int = 3
    """Decoder blocks."""
    dropout: float = 0.1
    """Dropout on residual branches and attention weights."""
    drop_path: float = 0.0
    """Stochastic depth of the encoder's sub-layers (rate of the last block; linear in depth)."""
    ctc_head: bool = False
    """Add a per-frame character head on the encoder: trained with a CTC loss, read by the
    ``ctc`` decoding."""

    def __post_init__(self) -> None:
        if self.num_columns % self.num_axes:
            raise ValueError(
                f"model.num_columns {self.num_columns} is not a multiple of num_axes {self.num_axes}"
            )
        if self.dim % self.heads:
            raise ValueError(f"model.dim {self.dim} is not divisible by model.heads {self.heads}")
        if self.dim % 2:
            raise ValueError(f"model.dim {self.dim} must be even (sinusoidal positions)")
        if self.window < 1:
            raise ValueError(f"model.window {self.window} must be >= 1")
        for name in ("dropout", "drop_path"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"model.{name} {getattr(self, name)} must lie in [0, 1)")


class Seq2Seq(nn.Module):
    """Pre-norm encoder-decoder over landmark frames."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c = self.config = config
        self.embedding = Embedding(
            3 * c.num_columns, c.dim, c.max_frames, c.conv_blocks, c.conv_kernel, c.conv_expand,
            c.dropout,
        )  # fmt: skip
        self.encoder = Encoder(
            c.dim, c.heads, c.mlp_ratio, c.encoder_blocks, c.local_layers, c.window, c.dropout,
            c.drop_path,
        )  # fmt: skip
        self.decoder = Decoder(
            c.dim, c.heads, c.mlp_ratio, c.decoder_blocks, c.vocab_size, c.max_target_len,
            c.dropout,
        )  # fmt: skip
        self.ctc = nn.Linear(c.dim, c.vocab_size) if c.ctc_head else None

    def encode(self, landmarks: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, C) raw frames -> encoded frames (B, T, D) and frame mask (B, T)."""
        feats, valid = landmark_features(landmarks, self.config.num_axes)
        x = self.embedding(feats, valid)
        return self.encoder(x, valid), valid

    def forward(self, landmarks: Tensor, tokens: Tensor) -> Tensor:
        """Teacher-forced logits (B, L, V) for decoder input ``tokens`` (B, L)."""
        memory, valid = self.encode(landmarks)
        return self.decoder(tokens, memory, valid)

    def forward_train(
        self, landmarks: Tensor, tokens: Tensor
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        """Decoder logits (B, L, V), per-frame CTC logits (B, T, V) or None, frame mask (B, T)."""
        memory, valid = self.encode(landmarks)
        ctc = self.ctc(memory) if self.ctc is not None else None
        return self.decoder(tokens, memory, valid), ctc, valid

    def generate(self, landmarks: Tensor, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """Greedy decode: tokens (B, steps) and their logits (B, steps, V)."""
        memory, valid = self.encode(landmarks)
        return self.decoder.greedy(memory, valid, steps)

    def ctc_logits(self, landmarks: Tensor) -> tuple[Tensor, Tensor]:
        """Per-frame CTC logits (B, T, V) and the frame mask (B, T)."""
        if self.ctc is None:
            raise ValueError("ctc decoding needs the CTC head: train with model.ctc_weight > 0")
        memory, valid = self.encode(landmarks)
        return self.ctc(memory), valid

    def decode(self, landmarks: Tensor, decoding: str = "attention") -> Tensor:
        """Token rows (B, K) whose :func:`aslfs_pl.vocab.decode` is the predicted phrase."""
        if decoding == "attention":
            return self.generate(landmarks)[0]
        if decoding == "ctc":
            return ctc_greedy(*self.ctc_logits(landmarks))
        raise ValueError(f"decoding {decoding!r}: choose one of {DECODINGS}")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def hparams(self) -> dict:
        return asdict(self.config)

    def export_form(self, decoding: str = "attention") -> Seq2SeqExport:
        return Seq2SeqExport(self, decoding)


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
    position = torch.arange(1, best.shape[1] + 1, device=best.device)
    inside = position <= (position * valid).amax(1, keepdim=True)
    emit = inside & (best < vocab.NUM_CHARACTERS) & (best != previous)
    return torch.where(emit, best, torch.full_like(best, vocab.PAD))


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

    def forward(self, memory: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        logits = linear(memory, self.weights("head"))  # (n, V)
        best = torch.topk(logits, 1).indices[:, 0].to(torch.float32)  # (n,)
        previous = torch.cat([self.pad, best[:-1]], 0)
        step = best - previous
        # frames up to the last valid one (the CTC loss's input length)
        last = torch.topk(((j + self.one) * valid[:, 0]).unsqueeze(0), 1).values[0]  # (1,)
        inside = j < last - self.half_step
        emit = inside & (best < self.last_character) & (step * step > self.quarter)
        return torch.where(emit.unsqueeze(1), logits, self.pad_row)


class Seq2SeqExport(ExportForm):
    """The network's deployment twin for one sequence: (n, C) raw rows and their frame indices
    j (n,) as float -> the ``decoding``'s output rows: ``attention``, the greedy decoder's logits
    (max_target_len, V), rows after the end token a one-hot pad; ``ctc``, the per-frame rows of
    :class:`CTCExport` (n, V).

    The frame axis is symbolic; rows whose landmarks are all NaN are invalid frames (see
    :mod:`aslfs_pl.deploy.graph` for how the Kaggle input becomes these rows). The part of the
    network the decoding does not read (the CTC head, or the attention decoder) is left out.
    """

    def __init__(self, net: Seq2Seq, decoding: str = "attention"):
        super().__init__()
        if decoding not in DECODINGS:
            raise ValueError(f"decoding {decoding!r}: choose one of {DECODINGS}")
        self.num_axes = net.config.num_axes
        self.embedding = export_form(net.embedding, self.num_axes)
        self.encoder = export_form(net.encoder)
        if decoding == "ctc":
            if net.ctc is None:
                raise ValueError("ctc decoding needs the CTC head (model.ctc_weight > 0)")
            self.head = CTCExport(net.ctc, net.encoder.norm)
            self.covers(*net.decoder.modules())  # not read by this decoding
        else:
            self.head = export_form(net.decoder, net.encoder.norm)
            if net.ctc is not None:
                self.covers(net.ctc)  # not read by this decoding

    def forward(self, x: Tensor, j: Tensor) -> Tensor:
        feats, valid = frame_features(x, self.num_axes)  # (n, 3C), (n, 1)
        memory = self.encoder(self.embedding(feats, valid, j), valid, j)  # (n, D)
        return self.head(memory, valid, j)  # (L, V) or (n, V)
