"""How a phrase is read out of the network: one registered object per decoding.

Each module of this package defines one :class:`~aslfs_pl.model.decoding.base.Decoding`
(its PyTorch read-out, its export form, its parity rule, whether it needs the CTC head) and
registers it; importing the package imports every module in it, so a new decoding is one new
file here plus its tests. ``model.decoding`` and the export's ``--decoding`` take the names of
:data:`DECODINGS`.
"""

from __future__ import annotations

import importlib
import pkgutil

from aslfs_pl.model.decoding.base import (
    DECODINGS,
    Decoding,
    Encoded,
    ParityRow,
    get,
    register,
    usable,
)

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["DECODINGS", "Decoding", "Encoded", "ParityRow", "get", "register", "usable"]
