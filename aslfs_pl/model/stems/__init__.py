"""Stems (the embedding of the raw landmark frames): one registered
:class:`~aslfs_pl.model.stems.base.Stem` per module.

Importing the package imports every module in it, so a new stem is one new file here plus its
tests (docs/architecture.md, "Adding a setting, a part or a decoding"). ``model.stem`` takes the names of
:data:`STEMS`; ``model.stem_conf`` the chosen stem's own settings.
"""

from __future__ import annotations

from aslfs_pl.model.registry import import_modules
from aslfs_pl.model.stems.base import STEMS, Stem, register

import_modules(__name__, __path__)

__all__ = ["STEMS", "Stem", "register"]
