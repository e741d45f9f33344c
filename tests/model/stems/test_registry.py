"""The stem registry: the conv + ECA stem is its first entry, and a new stem is one file."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from aslfs_pl.deploy.graph import KaggleModel
from aslfs_pl.export_ops import ExportForm, linear
from aslfs_pl.model import decoding
from aslfs_pl.model.config import ModelConfig
from aslfs_pl.model.features import frame_features, landmark_features, zero_nan
from aslfs_pl.model.seq2seq import Seq2Seq
from aslfs_pl.model.stems import STEMS, Stem
from aslfs_pl.model.stems.conv_eca import ConvECAStem
from aslfs_pl.trained import from_config
from tests.helpers import ONE_BLOCK, TINY, TINY_MODEL, landmark_batch


def test_the_conv_eca_stem_is_the_default_and_reads_its_settings():
    assert STEMS.names()[0] == "conv_eca" and ModelConfig().stem == "conv_eca"
    net = Seq2Seq(ModelConfig(**TINY_MODEL | {"stem_conf": {"blocks": 3, "kernel": 7}}))
    assert isinstance(net.embedding, ConvECAStem) and len(net.embedding.convs) == 3
    assert net.embedding.convs[0].dwconv.kernel == 7


@dataclass
class RawLinearSettings:
    """Settings of a stem written inside a test."""

    scale: float = 1.0
    """Multiplies the raw coordinates."""


class RawLinear(Stem):
    """A stem written inside a test: the raw coordinates (NaN -> 0) through one dense layer."""

    name = "raw_linear"
    Settings = RawLinearSettings

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_axes, self.scale = config.num_axes, config.stem_settings.scale
        self.dense = nn.Linear(config.num_columns, config.dim)

    def forward(self, landmarks: Tensor) -> tuple[Tensor, Tensor]:
        _, valid = landmark_features(landmarks, self.num_axes)
        return self.dense(zero_nan(landmarks) * self.scale), valid

    def export_form(self) -> ExportForm:
        return RawLinearExport(self)


class RawLinearExport(ExportForm):
    def __init__(self, stem: RawLinear):
        super().__init__()
        self.num_axes = stem.num_axes
        self.put_weights("dense", stem.dense.weight * stem.scale, stem.dense.bias)
        self.covers(stem.dense)

    def forward(self, rows: Tensor, j: Tensor) -> tuple[Tensor, Tensor]:
        _, valid = frame_features(rows, self.num_axes)
        return linear(zero_nan(rows), self.weights("dense")), valid


def test_a_new_stem_is_one_class(monkeypatch):
    monkeypatch.setitem(STEMS.classes, RawLinear.name, RawLinear)
    torch.manual_seed(0)
    settings = ONE_BLOCK | {"stem": "raw_linear", "stem_conf": {"scale": 2.0}}
    net = Seq2Seq(ModelConfig(**TINY_MODEL | settings)).eval()
    x = landmark_batch(t=16)
    assert net.decode(x, "attention").shape == (2, 8)  # reads out like any stem
    graph = KaggleModel(net).eval()  # its export form, checked to cover every weight
    with torch.no_grad():
        out = graph(x[0])["outputs"].numpy()
        row = decoding.get("attention").parity_row(net, 16, out, x[:1])  # equals PyTorch's
    assert row.same_text and row.max_diff < 1e-4
    trained = from_config(
        ["--config", TINY, "--model.stem", "raw_linear", "--model.stem_conf", "{scale: 3.0}"]
    )
    assert isinstance(trained.net.embedding, RawLinear) and trained.net.embedding.scale == 3.0
