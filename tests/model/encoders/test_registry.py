"""The encoder registry: every family is one registered class, and a new one is one file."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from aslfs_pl.deploy.graph import KaggleModel
from aslfs_pl.export_ops import ExportForm, export_form, normalise
from aslfs_pl.model import decoding
from aslfs_pl.model.config import ModelConfig
from aslfs_pl.model.encoders import ENCODERS, Encoder
from aslfs_pl.model.layers import MLP
from aslfs_pl.model.seq2seq import Seq2Seq
from aslfs_pl.trained import from_config
from tests.helpers import ONE_BLOCK, TINY, TINY_MODEL, landmark_batch


def test_the_registry_lists_each_family_with_its_settings_and_export_form():
    assert set(ENCODERS.names()) >= {"local_global", "conformer", "squeezeformer"}
    assert ENCODERS.canonical("seed") == "local_global"  # the older name still loads
    for name in ENCODERS.names():
        cls = ENCODERS.get(name)
        assert issubclass(cls, Encoder) and cls.name == name
        conf = {"pattern": "CTS"} if name == "conv_transformer" else {}  # 3 blocks spelled
        settings = {"encoder": name, "encoder_conf": conf, "encoder_blocks": 3}
        net = Seq2Seq(ModelConfig(**TINY_MODEL | settings))
        assert isinstance(net.encoder, cls) and isinstance(net.encoder.norm, nn.LayerNorm)
        assert isinstance(export_form(net.encoder), ExportForm)


@dataclass
class FrameMLPSettings:
    """Settings of a family written inside a test."""

    ratio: int = 2
    """MLP hidden width / dim."""


class FrameMLP(Encoder):
    """A family written inside a test: per-frame MLP blocks, no attention."""

    name = "frame_mlp"
    Settings = FrameMLPSettings

    def __init__(self, config: ModelConfig):
        super().__init__()
        c, s = config, config.encoder_settings
        self.norms = nn.ModuleList(nn.LayerNorm(c.dim) for _ in range(c.encoder_blocks))
        self.mlps = nn.ModuleList(MLP(c.dim, s.ratio) for _ in range(c.encoder_blocks))
        self.norm = nn.LayerNorm(c.dim)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        for norm, mlp in zip(self.norms, self.mlps, strict=True):
            x = x + mlp(norm(x))
        return self.norm(x)

    def export_form(self) -> ExportForm:
        return FrameMLPExport(self)


class FrameMLPExport(ExportForm):
    def __init__(self, enc: FrameMLP):
        super().__init__()
        self.mlps = nn.ModuleList(
            export_form(m, n) for n, m in zip(enc.norms, enc.mlps, strict=True)
        )
        self.eps = enc.norm.eps

    def forward(self, x: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        for mlp in self.mlps:
            x = x + mlp(x)
        return normalise(x, torch.tensor(self.eps))


def test_a_new_encoder_is_one_class(monkeypatch):
    monkeypatch.setitem(ENCODERS.classes, FrameMLP.name, FrameMLP)
    settings = ONE_BLOCK | {"encoder": "frame_mlp", "encoder_conf": {"ratio": 3}}
    torch.manual_seed(0)
    net = Seq2Seq(ModelConfig(**TINY_MODEL | settings)).eval()
    assert net.encoder.mlps[0].fc1.out_features == 3 * 32  # its own setting reached it
    x = landmark_batch(t=16)
    assert net.decode(x, "attention").shape == (2, 8)  # reads out like any family
    graph = KaggleModel(net).eval()  # its export form, checked to cover every weight
    with torch.no_grad():
        out = graph(x[0])["outputs"].numpy()
        row = decoding.get("attention").parity_row(net, 16, out, x[:1])  # equals PyTorch's
    assert row.same_text and row.max_diff < 1e-4
    with pytest.raises(ValueError, match="model.encoder_conf.heads: not a setting of the"):
        ModelConfig(encoder="frame_mlp", encoder_conf={"heads": 2})
    # the training CLI takes it and its settings (whole: tiny.yaml's are another family's)
    trained = from_config(
        ["--config", TINY, "--model.encoder", "frame_mlp", "--model.encoder_conf", "{ratio: 4}"]
    )
    assert isinstance(trained.net.encoder, FrameMLP)
    assert trained.net.encoder.mlps[0].fc1.out_features == 4 * trained.net.config.dim
