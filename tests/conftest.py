"""Shared fixtures: synthetic Kaggle-format datasets written to tmp dirs, and one TFLite export
of the tiny network (CPU only, no network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PJRT_DEVICE", "CPU")
# XLA's CPU backend compiles every graph through LLVM; at optimisation level 0 that takes about
# half the time. The tests count graphs and compare values, never speed.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """A small dataset from the project's synthetic writer (shared by the session's tests)."""
    from aslfs_pl.data.synthetic import write_synthetic_dataset

    out = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(out, num_sequences=120, seed=0, sequences_per_file=30)
    return out


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """:func:`tests.helpers.tiny_net` converted once (fp16) for the session's deploy tests:
    (the network, its :class:`~aslfs_pl.deploy.convert.ExportResult`)."""
    from aslfs_pl.deploy.convert import convert
    from tests.helpers import COLUMNS, tiny_net

    net = tiny_net()
    return net, convert(net, COLUMNS, tmp_path_factory.mktemp("export"))
