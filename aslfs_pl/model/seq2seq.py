"""The encoder-decoder: raw landmark frames in, character logits out.

(B, T, C) raw columns (NaN = unseen or padding)
  -> features (B, T, 3C) + frame mask            aslfs_pl.data.features
  -> embedding: dense, BN, causal conv + ECA    (B, T, D)
  -> encoder: blocks of local / global attention (B, T, D)
  -> decoder over (B, L) tokens                  (B, L, V)
  -> (optional) CTC head over the frames         (B, T, V)

How a phrase is read out (``attention``, ``ctc``, ``joint``): :mod:`aslfs_pl.model.decoding`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.data.features import frame_features, landmark_features
from aslfs_pl.model.decoder import Decoder
from aslfs_pl.model.decoding import (
    DECODINGS,
    CTCExport,
    JointExport,
    ctc_greedy,
    decode_every,
    joint_decode,
)
from aslfs_pl.model.encoder import Embedding, Encoder
from aslfs_pl.model.export_ops import ExportForm, export_form


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
    ``ctc`` and ``joint`` decodings."""

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
        self._need_ctc("ctc")
        memory, valid = self.encode(landmarks)
        return self.ctc(memory), valid

    def _need_ctc(self, decoding: str) -> None:
        if self.ctc is None:
            raise ValueError(
                f"{decoding} decoding needs the CTC head: train with model.ctc_weight > 0"
            )

    def decode(self, landmarks: Tensor, decoding: str = "attention") -> Tensor:
        """Token rows (B, K) whose :func:`aslfs_pl.vocab.decode` is the predicted phrase
        (:mod:`aslfs_pl.model.decoding`)."""
        if decoding == "attention":
            return self.generate(landmarks)[0]
        if decoding == "ctc":
            return ctc_greedy(*self.ctc_logits(landmarks))
        if decoding == "joint":
            self._need_ctc(decoding)
            return joint_decode(self, landmarks)
        raise ValueError(f"decoding {decoding!r}: choose one of {DECODINGS}")

    def decode_every(self, landmarks: Tensor) -> dict[str, Tensor]:
        """The token rows of every decoding (``DECODINGS``) from one encoder pass and one
        greedy loop; needs the CTC head."""
        self._need_ctc("joint")
        return decode_every(self, landmarks)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def hparams(self) -> dict:
        return asdict(self.config)

    def export_form(self, decoding: str = "attention") -> Seq2SeqExport:
        return Seq2SeqExport(self, decoding)


class Seq2SeqExport(ExportForm):
    """The network's deployment twin for one sequence: (n, C) raw rows and their frame indices
    j (n,) as float -> the ``decoding``'s output rows: ``attention``, the greedy decoder's logits
    (max_target_len, V), rows after the end token a one-hot pad; ``ctc``, the per-frame rows of
    :class:`CTCExport` (n, V); ``joint``, the chosen phrase's one-hot rows of
    :class:`JointExport` (max_target_len, V).

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
        if decoding != "attention":
            net._need_ctc(decoding)
        if decoding == "ctc":
            self.head = CTCExport(net.ctc, net.encoder.norm)
            self.covers(*net.decoder.modules())  # not read by this decoding
        elif decoding == "joint":
            self.head = JointExport(net)
        else:
            self.head = export_form(net.decoder, net.encoder.norm)
            if net.ctc is not None:
                self.covers(net.ctc)  # not read by this decoding

    def forward(self, x: Tensor, j: Tensor) -> Tensor:
        feats, valid = frame_features(x, self.num_axes)  # (n, 3C), (n, 1)
        memory = self.encoder(self.embedding(feats, valid, j), valid, j)  # (n, D)
        return self.head(memory, valid, j)  # (L, V) or (n, V)
