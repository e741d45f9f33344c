"""The layers the encoder and decoder are built from."""

import pytest
import torch

from aslfs_pl import vocab
from aslfs_pl.model.layers import DropPath
from tests.helpers import landmark_batch, tiny_model


def test_drop_path_is_identity_in_eval_and_drops_whole_sequences_in_training():
    layer = DropPath(0.5)
    x = torch.ones(2000, 3, 4)
    assert torch.equal(layer.eval()(x), x)
    y = layer.train()(x)
    per_row = y.flatten(1)
    kept = (per_row == 2.0).all(1)
    assert ((per_row == 0).all(1) | kept).all()  # a row is dropped or kept whole
    assert 0.45 < kept.float().mean() < 0.55  # and the expectation is unchanged
    assert abs(y.mean().item() - 1.0) < 0.06
    net = tiny_model(drop_path=0.2, encoder_blocks=2)
    rates = [b.drop_path.p for b in net.encoder.blocks]
    assert rates == pytest.approx([0.1, 0.2])  # linear in depth
    x = landmark_batch()
    net.eval()
    tokens = torch.full((2, 3), vocab.SOS)
    assert torch.equal(net(x, tokens), net(x, tokens))
    with pytest.raises(ValueError, match="drop_path"):
        tiny_model(drop_path=1.0)
