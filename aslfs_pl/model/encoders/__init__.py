"""Encoder families: one registered :class:`~aslfs_pl.model.encoders.base.Encoder` per module.

Importing the package imports every module in it, so a new family is one new file here plus its
tests (docs/architecture.md, "Adding a setting, a part or a decoding"). ``model.encoder`` takes the names of
:data:`ENCODERS`; ``model.encoder_conf`` the chosen family's own settings.
"""

from __future__ import annotations

from aslfs_pl.model.encoders.base import ENCODERS, Encoder, register
from aslfs_pl.model.registry import import_modules

import_modules(__name__, __path__)

__all__ = ["ENCODERS", "Encoder", "register"]
