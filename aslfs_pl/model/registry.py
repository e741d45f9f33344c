"""Registries of the network's interchangeable parts (encoder families, stems).

A part is one class in one file of its package (:mod:`aslfs_pl.model.encoders`,
:mod:`aslfs_pl.model.stems`), decorated with its registry's :meth:`Registry.register`. The class
says everything the rest of the project needs to know about it:

* ``name`` (what ``model.encoder`` / ``model.stem`` takes) and ``aliases`` (older names that
  still load);
* ``Settings``: a dataclass of the part's own settings, with a docstring under each field and
  validation in ``__post_init__``; ``model.encoder_conf`` / ``model.stem_conf`` hold their values
  (ESPnet's ``encoder`` + ``encoder_conf``), so a setting exists only where it does something;
* ``legacy``: the flat ``model.*`` fields of older versions that became its settings, so old
  checkpoints load (:func:`aslfs_pl.model.config.upgrade_settings`);
* ``check(config)``: the checks that need the other network settings too;
* the module itself, built from the whole :class:`~aslfs_pl.model.config.ModelConfig`
  (``Part(config)``), with its ``export_form()`` twin beside it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass
class NoSettings:
    """A part without settings of its own."""


class Registry:
    """Part name -> class, for the network setting ``model.<setting>``."""

    def __init__(self, setting: str, what: str):
        self.setting, self.what = setting, what
        self.classes: dict[str, type] = {}
        self.aliases: dict[str, str] = {}

    def register(self, cls: type) -> type:
        """Class decorator: registers ``cls`` under ``cls.name`` and its ``cls.aliases``."""
        for name in (cls.name, *cls.aliases):
            if name in self.classes or name in self.aliases:
                raise ValueError(f"two {self.what}s are called {name!r}")
        self.classes[cls.name] = cls
        self.aliases |= dict.fromkeys(cls.aliases, cls.name)
        return cls

    def names(self) -> list[str]:
        return list(self.classes)

    def canonical(self, name: str) -> str:
        """The registered name of ``name`` (an alias reads as its part).

        Raises:
            ValueError: naming the setting and the registered names.
        """
        name = self.aliases.get(name, name)
        if name not in self.classes:
            raise ValueError(f"model.{self.setting} {name!r}: one of {', '.join(self.classes)}")
        return name

    def get(self, name: str) -> type:
        return self.classes[self.canonical(name)]

    def settings(self, name: str, conf: Mapping[str, Any]) -> Any:
        """Part ``name``'s ``Settings`` from the mapping ``conf`` (unset ones: its defaults).

        Raises:
            ValueError: naming ``model.<setting>_conf`` and the part's settings when ``conf``
                holds another name, or the part's own complaint about a value.
        """
        cls = self.get(name)
        known = [f.name for f in fields(cls.Settings)]
        for key in conf:
            if key not in known:
                offered = ", ".join(known) if known else "none"
                raise ValueError(
                    f"model.{self.setting}_conf.{key}: not a setting of the {cls.name} "
                    f"{self.what} (its settings: {offered}; over a config that names another, "
                    f"give model.{self.setting}_conf whole, e.g. '{{}}' for the defaults)"
                )
        return cls.Settings(**conf)

    def legacy_fields(self) -> dict[str, list[tuple[str, str]]]:
        """Every flat ``model.*`` field of older versions -> [(part, its setting now)]."""
        moved: dict[str, list[tuple[str, str]]] = {}
        for cls in self.classes.values():
            for old, new in cls.legacy.items():
                moved.setdefault(old, []).append((cls.name, new))
        return moved


class Part:
    """What every registered part class declares (mixed into its ``nn.Module``)."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    Settings: ClassVar[type] = NoSettings
    legacy: ClassVar[dict[str, str]] = {}

    @classmethod
    def check(cls, config: Any) -> None:
        """Raise ValueError when the part cannot be built with the rest of ``config``."""


def import_modules(package: str, path: list[str]) -> None:
    """Import every module of ``package`` (found on ``path``), so each registers its part."""
    for module in sorted(m.name for m in pkgutil.iter_modules(path)):
        importlib.import_module(f"{package}.{module}")
