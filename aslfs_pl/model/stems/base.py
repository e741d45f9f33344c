"""What a stem is, and the registry of them.

A stem turns raw landmark frames into the encoder's input: (B, T, C) raw columns (NaN = unseen
or padding) -> embedded frames (B, T, D) and the frame mask (B, T). It owns its features (which
landmarks, which axes, which per-frame functions of them), so stems that read the landmarks
differently need no change elsewhere. It is one ``nn.Module`` subclass of :class:`Stem`,
registered with :func:`register` in a module of its own in this package, built from the whole
:class:`~aslfs_pl.model.config.ModelConfig` (its own settings are ``config.stem_settings``;
:mod:`aslfs_pl.model.registry`).

``export_form()`` gives the deployment twin: (n, C) raw rows of one sequence and their frame
indices ``j`` (n,) as float -> (n, D) and ``valid`` (n, 1) float, written with ops that lower to
TFLite with a symbolic n (:mod:`aslfs_pl.export_ops`). When the encoder rotates its queries and
keys (``model.rotary``), a stem adds no positions.
"""

from __future__ import annotations

from torch import Tensor, nn

from aslfs_pl.export_ops import ExportForm
from aslfs_pl.model.registry import Part, Registry

#: The stems ``model.stem`` names.
STEMS = Registry("stem", "stem")
register = STEMS.register


class Stem(Part, nn.Module):
    """A stem (see the module's doc)."""

    def forward(self, landmarks: Tensor) -> tuple[Tensor, Tensor]:  # (B, T, C) -> (B, T, D), (B, T)
        raise NotImplementedError

    def export_form(self) -> ExportForm:
        raise NotImplementedError
