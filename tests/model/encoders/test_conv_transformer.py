"""The conv / transformer encoder (the 2nd place's): its frame rate, its mask, its twin."""

from __future__ import annotations

import pytest
import torch

from aslfs_pl import vocab
from aslfs_pl.deploy.graph import KaggleModel
from aslfs_pl.model.config import ModelConfig
from aslfs_pl.model.decoding import DECODINGS
from aslfs_pl.model.features import fit_length
from tests.helpers import ENCODERS, nan_frames, tiny_ctc_net


def test_a_stride_block_halves_the_frames_and_keeps_every_other_frames_mask():
    net = tiny_ctc_net(**ENCODERS["conv_transformer"])  # pattern CTSC
    x = torch.from_numpy(fit_length(nan_frames(13, seed=1), 16))[None]
    stem_valid = net.embedding(x)[1]
    with torch.no_grad():
        memory, valid = net.encode(x)
    assert memory.shape[1] == 8 and torch.equal(valid, stem_valid[:, ::2])


@pytest.mark.parametrize("name", list(DECODINGS))
def test_every_decoding_reads_the_halved_frames_alike_in_pytorch_and_the_twin(name):
    net = tiny_ctc_net(**ENCODERS["conv_transformer"], ctc_gru=True)  # the GRU over them too
    twin = KaggleModel(net, name)
    with torch.no_grad():
        for t in (0, 1, 2, 7, 16, 40):
            raw = nan_frames(t, seed=t)
            x = torch.from_numpy(fit_length(raw, 16))[None]
            want = vocab.decode(net.decode(x, name)[0].tolist())
            got = vocab.decode_kaggle(twin(torch.from_numpy(raw))["outputs"].argmax(1).numpy())
            assert got == want, (name, t)


def test_the_pattern_spells_the_blocks():
    with pytest.raises(ValueError, match="pattern 'CTX': letters C, S and T only"):
        ModelConfig(encoder="conv_transformer", encoder_conf={"pattern": "CTX"})
    with pytest.raises(ValueError, match="pattern 'CTSC' spells 4 blocks, model.encoder_blocks"):
        ModelConfig(encoder="conv_transformer", encoder_blocks=3, encoder_conf={"pattern": "CTSC"})
    second = ModelConfig(encoder="conv_transformer", encoder_blocks=17, dim=192, mlp_ratio=2)
    assert second.encoder_settings.pattern == "CCCTCCCTSCCCTCCCT"  # the 2nd place's
