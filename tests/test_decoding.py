"""The decoding registry: every decoding is one object with its read-out, export form and parity
rule, and a new one is one class."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.commands import export_tflite
from aslfs_pl.deploy.graph import KaggleModel
from aslfs_pl.deploy.parity import ParityReport
from aslfs_pl.export_ops import ExportForm
from aslfs_pl.model import decoding
from aslfs_pl.model.config import ModelConfig
from aslfs_pl.model.decoding import DECODINGS, Decoding, Encoded, ParityRow
from aslfs_pl.model.seq2seq import Seq2Seq
from aslfs_pl.task import Seq2SeqTask


def tiny(ctc: bool = True) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = ModelConfig(
        num_columns=12, num_axes=2, max_frames=16, max_target_len=8, dim=32, heads=2,
        mlp_ratio=2, conv_blocks=1, conv_kernel=5, encoder_blocks=1, local_layers=1, window=4,
        decoder_blocks=1, dropout=0.0, ctc_head=ctc,
    )  # fmt: skip
    return Seq2Seq(cfg).eval()


def frames(b: int = 3, t: int = 16) -> Tensor:
    torch.manual_seed(1)
    x = torch.rand(b, t, 12)
    x[1, 9:] = float("nan")  # a shorter sequence
    return x


def test_the_registry_lists_attention_ctc_and_joint_each_with_all_its_parts():
    assert list(DECODINGS) == ["attention", "ctc", "joint"]
    assert [d.needs_ctc for d in DECODINGS.values()] == [False, True, True]
    for name, method in DECODINGS.items():
        assert method.name == name and method.summary
        # each part is the decoding's own, not the base class's placeholder
        for part in ("read", "export_head", "parity_row"):
            assert getattr(type(method), part) is not getattr(Decoding, part), (name, part)
    assert decoding.get("joint") is DECODINGS["joint"]
    with pytest.raises(ValueError, match="decoding 'beam': choose one of attention, ctc, joint"):
        decoding.get("beam")
    assert decoding.usable(tiny(ctc=False)) == ["attention"]
    assert decoding.usable(tiny()) == ["attention", "ctc", "joint"]


def test_decodings_share_one_encoder_pass_and_one_greedy_loop(monkeypatch):
    net, x = tiny(), frames()
    calls = {"encode": 0, "greedy": 0}
    for owner, name in ((net, "encode"), (net.decoder, "greedy")):
        original = getattr(owner, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)
    with torch.no_grad():
        every = net.decode_every(x)
    assert calls == {"encode": 1, "greedy": 1}
    for name, rows in every.items():
        with torch.no_grad():
            assert torch.equal(rows, net.decode(x, name)), name


def test_the_export_head_is_the_decodings_own(monkeypatch):
    net = tiny()
    built = []
    for name, method in DECODINGS.items():
        original = method.export_head

        def spy(n, _original=original, _name=name):
            built.append(_name)
            return _original(n)

        monkeypatch.setattr(method, "export_head", spy)
        KaggleModel(net, name)
    assert built == ["attention", "ctc", "joint"]


class Silent(Decoding):
    """A decoding written as a contributor would write one: reads nothing, says nothing."""

    name = "silent"
    summary = "an empty phrase (a test's decoding)"

    def read(self, encoded: Encoded) -> Tensor:
        return torch.full((encoded.memory.shape[0], 1), vocab.PAD)

    def export_head(self, net: nn.Module) -> ExportForm:
        return SilentExport(net)

    def parity_row(self, net: nn.Module, frames: int, out: np.ndarray, padded: Tensor) -> ParityRow:
        reference = self.read(Encoded(net, padded))[0].numpy()
        same = vocab.decode_kaggle(out.argmax(1)) == vocab.decode(reference)
        return ParityRow(frames, same, 0.0, None if same else 0, 0.0)


class SilentExport(ExportForm):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.covers(net.encoder.norm, *net.decoder.modules())  # folded away: reads neither
        if net.ctc is not None:
            self.covers(net.ctc)
        pad = torch.zeros(1, net.config.vocab_size)
        pad[0, vocab.PAD] = 1.0
        self.put("pad", pad)

    def forward(self, memory: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        return self.pad + 0.0 * memory[:1, :1]  # (1, V), reads the frames so it is traced


def test_a_new_decoding_is_one_class(monkeypatch, capsys):
    monkeypatch.setitem(DECODINGS, "silent", Silent())
    net = tiny(ctc=False)
    x = frames()
    assert net.decode(x, "silent").tolist() == [[vocab.PAD]] * 3  # PyTorch read-out
    assert "silent" in net.decode_every(x)  # validation scores it too
    graph = KaggleModel(net, "silent").eval()  # its export form, checked to cover every weight
    with torch.no_grad():
        out = graph(x[0])["outputs"].numpy()
    assert out.shape == (1, vocab.VOCAB_SIZE) and vocab.decode_kaggle(out.argmax(1)) == ""
    row = Silent().parity_row(net, 16, out, x[:1])  # its parity rule
    assert ParityReport([row], 1e-4).ok
    task = Seq2SeqTask(
        num_columns=12, dim=32, heads=2, conv_blocks=1, encoder_blocks=1, decoder_blocks=1,
        decoding="silent",
    )  # fmt: skip
    assert list(task.val_scores) == ["attention", "silent"]
    for name, complaint in (("silent", "give --ckpt"), ("nonsense", "invalid choice")):
        with pytest.raises(SystemExit):  # the export command offers it, and only registered ones
            export_tflite.main(["--out", "x", "--decoding", name])
        assert complaint in capsys.readouterr().err


def test_decodings_that_need_the_ctc_head_refuse_a_network_without_one():
    net, x = tiny(ctc=False), frames()
    for name in ("ctc", "joint"):
        with pytest.raises(ValueError, match=f"{name} decoding needs the CTC head"):
            net.decode(x, name)
        with pytest.raises(ValueError, match=f"{name} decoding needs the CTC head"):
            net.export_form(name)
