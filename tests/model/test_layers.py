"""The layers the encoder and decoder are built from."""

import pytest
import torch
from torch import nn

from aslfs_pl import vocab
from aslfs_pl.model.layers import DropPath, MaskedBatchNorm, half_turn, rotary_tables, rotate
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


def test_masked_batch_norm_counts_valid_frames_only():
    torch.manual_seed(0)
    x = torch.randn(3, 10, 6) * 2 + 1
    mask = torch.ones(3, 10, dtype=torch.bool)
    ours, reference = MaskedBatchNorm(6, momentum=0.1), nn.BatchNorm1d(6, momentum=0.1)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.uniform_(-0.5, 0.5)
    reference.load_state_dict(ours.state_dict())  # the same state-dict keys
    # every frame valid: exactly nn.BatchNorm1d, in training (and its running statistics) and eval
    torch.testing.assert_close(ours(x, mask), reference(x.transpose(1, 2)).transpose(1, 2))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(reference, name))
    ours.eval(), reference.eval()
    torch.testing.assert_close(ours(x, mask), reference(x.transpose(1, 2)).transpose(1, 2))
    # padded frames (any values) change neither the valid frames' output nor the statistics
    a, b = MaskedBatchNorm(6), MaskedBatchNorm(6)
    padded = torch.cat([x, torch.randn(3, 7, 6) * 50], 1)
    valid = torch.cat([mask, torch.zeros(3, 7, dtype=torch.bool)], 1)
    torch.testing.assert_close(a(x, mask), b(padded, valid)[:, :10])
    torch.testing.assert_close(a.running_var, b.running_var)
    assert not torch.allclose(
        nn.BatchNorm1d(6)(padded.transpose(1, 2))[..., :10].transpose(1, 2), a(x, mask)
    )


def test_rotary_scores_depend_on_the_distance_between_frames_only():
    torch.manual_seed(0)
    q, k = torch.randn(8), torch.randn(8)
    cos, sin = rotary_tables(40, 8)

    def score(i: int, j: int) -> torch.Tensor:
        return rotate(q, (cos[i], sin[i])) @ rotate(k, (cos[j], sin[j]))

    torch.testing.assert_close(score(3, 1), score(30, 28))
    torch.testing.assert_close(score(0, 0), q @ k)  # frame 0 is not turned
    assert not torch.allclose(score(3, 1), score(3, 2))
    torch.testing.assert_close(rotate(q, (cos[5], sin[5])).norm(), q.norm())  # a rotation


def test_half_turn_is_the_rotations_second_term_as_a_matrix():
    z = torch.randn(3, 6)
    torch.testing.assert_close(z @ half_turn(6), torch.cat([-z[:, 3:], z[:, :3]], 1))
