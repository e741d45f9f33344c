"""What an encoder family is, and the registry of them.

An encoder reads the stem's embedded frames and writes encoded frames, at the same rate unless
the family says otherwise (:meth:`Encoder.output_mask`): (B, T, D), (B, T) valid -> (B, T', D). It is one ``nn.Module`` subclass of :class:`Encoder`,
registered with :func:`register` in a module of its own in this package, built from the whole
:class:`~aslfs_pl.model.config.ModelConfig` (its own settings are ``config.encoder_settings``,
an instance of its ``Settings`` dataclass; :mod:`aslfs_pl.model.registry`).

Its last layer is a ``LayerNorm`` named ``norm``: the export form returns the frames normalised
without that norm's affine, which the decoder's cross-attention, the CTC head and the confidence
head fold into their own weights. ``export_form()`` gives the deployment twin: (n, D) frames of
one sequence, ``valid`` (n, 1) float, ``j`` (n,) frame indices as float -> (n, D), or for a
family that changes the frame rate the tuple (frames (m, D), their valid (m, 1), their indices
(m,)), written with ops that lower to TFLite with a symbolic n (:mod:`aslfs_pl.export_ops`).
"""

from __future__ import annotations

from torch import Tensor, nn

from aslfs_pl.export_ops import ExportForm
from aslfs_pl.model.registry import Part, Registry

#: The encoder families ``model.encoder`` names.
ENCODERS = Registry("encoder", "encoder family")
register = ENCODERS.register


class Encoder(Part, nn.Module):
    """An encoder family (see the module's doc)."""

    norm: nn.LayerNorm

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:  # (B, T, D), (B, T) -> (B, T', D)
        raise NotImplementedError

    def encoded_rows(self, frames: int) -> int:
        """The most rows the export form writes for ``frames`` (max_frames) input frames, what
        the heads' loops over the frames are unrolled over (later rows: invalid frames)."""
        return frames

    def output_mask(self, valid: Tensor) -> Tensor:
        """The encoded frames' mask (B, T') from the embedded frames' (B, T): the same, unless
        the family changes the frame rate."""
        return valid

    def export_form(self) -> ExportForm:
        raise NotImplementedError
