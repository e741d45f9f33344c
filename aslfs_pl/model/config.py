"""The network's shape: one typed dataclass, a docstring under each field.

A new model setting is one field here: the training CLI offers it as ``--model.<field>``
(:class:`aslfs_pl.task.Seq2SeqTask` passes its ``**net`` settings through to this class, and
jsonargparse reads the fields and their docstrings from it), checkpoints record it, and
:class:`aslfs_pl.model.seq2seq.Seq2Seq` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aslfs_pl import vocab


@dataclass
class ModelConfig:
    """Shape of the network. Defaults are the seed design (13-14M parameters at dim 256)."""

    num_columns: int = 176
    """Raw landmark columns per frame (set from the data module's landmark set)."""
    num_axes: int = 2
    """Axes per landmark, x, y[, z] (set from the data module)."""
    vocab_size: int = vocab.VOCAB_SIZE
    """Output classes: 59 characters + pad, start, end (set from the data module)."""
    max_frames: int = 384
    """Frames per sequence, the longest frame axis the positional encoding covers (set from
    ``data.max_frames``)."""
    max_target_len: int = 32
    """Decoder steps, phrase characters + end token (set from ``data.max_target_len``)."""
    dim: int = 256
    """Model width."""
    heads: int = 4
    """Attention heads."""
    mlp_ratio: int = 4
    """MLP hidden width / dim."""
    conv_blocks: int = 3
    """Causal conv + ECA blocks in the embedding."""
    conv_kernel: int = 17
    """Depthwise conv kernel, frames."""
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
    """Stochastic depth of the encoder's sub-layers: the last block's rate, earlier blocks
    linearly less (0 disables it)."""
    ctc_head: bool = False
    """A per-frame character head on the encoder, trained with a CTC loss and read by the
    decodings that need it. Not a flag of its own: the task sets it from ``model.ctc_weight > 0``."""

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
