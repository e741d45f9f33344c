"""The layers the encoder and decoder are built from."""

import pytest
import torch
from torch import nn

from aslfs_pl import vocab
from aslfs_pl.model.layers import (
    Attention,
    MaskedBatchNorm,
    attention,
    global_mask,
    half_turn,
    rotary_tables,
    rotate,
)
from aslfs_pl.model.regularisation import Dropout, DropPath, dropout_mask
from tests.helpers import TINY_MODEL, landmark_batch, tiny_model


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


def explicit_attention(q, k, v, mask):
    """The attention the training path wrote out before the fused kernel: float32 scores,
    masked keys at -1e9, softmax, weights times values."""
    scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    return torch.softmax(scores.masked_fill(~mask, -1e9), -1) @ v


@pytest.mark.parametrize("kind", ["padding", "causal", "one key"])
def test_the_fused_attention_equals_the_explicit_softmax_with_its_gradients(kind):
    """The kernel (``scaled_dot_product_attention``, the CPU's flash attention here) against
    explicit matmuls + softmax: outputs and every gradient to float32 tolerance, under the
    masks the network uses (global with padding, causal, a row that sees one key only)."""
    torch.manual_seed(0)
    b, h, t, d = 3, 2, 37, 8
    valid = torch.arange(t) < torch.tensor([[37], [20], [1]])
    mask = {
        "padding": global_mask(valid),
        "causal": torch.ones(t, t, dtype=torch.bool).tril(),
        "one key": torch.eye(t, dtype=torch.bool),
    }[kind]
    inputs = [torch.randn(b, h, t, d, requires_grad=True) for _ in range(3)]
    fused = attention(*inputs, mask, dropout=0.0)
    grads = torch.autograd.grad(fused.square().sum(), inputs)
    reference = explicit_attention(*inputs, mask)
    expected = torch.autograd.grad(reference.square().sum(), inputs)
    torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_the_cpu_dropout_mask_has_the_rate_keeps_the_expectation_and_follows_the_seed():
    torch.manual_seed(0)
    mask = dropout_mask((1000, 1001), 0.1, torch.float32)  # a count not a multiple of 4
    dropped = (mask == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.002
    assert mask.unique().tolist() == [0.0, pytest.approx(1 / (1 - 6554 / 65536))]
    assert abs(mask.mean().item() - 1.0) < 0.003  # the expectation is unchanged
    assert dropout_mask((4, 5), 0.5, torch.bfloat16).dtype == torch.bfloat16
    torch.manual_seed(1)
    a = dropout_mask((64, 64), 0.3, torch.float32)
    torch.manual_seed(1)
    assert torch.equal(a, dropout_mask((64, 64), 0.3, torch.float32))  # seeded by torch
    assert not torch.equal(a, dropout_mask((64, 64), 0.3, torch.float32))
    assert (dropout_mask((300, 300), 0.3, torch.float32) == 0).float().mean() == pytest.approx(
        0.3, abs=0.01
    )


def test_dropout_is_identity_in_eval_and_its_gradient_is_its_mask_in_training():
    layer = Dropout(0.25)
    x = torch.randn(50, 40, requires_grad=True)
    assert torch.equal(layer.eval()(x), x)
    y = layer.train()(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.75) and torch.all(grad[~kept] == 0)
    assert torch.allclose(grad[kept], torch.full_like(grad[kept], 1 / 0.75))
    assert 0.2 < 1 - kept.float().mean() < 0.3
    assert isinstance(layer, nn.Dropout)  # switched on and off with every other dropout


def test_attention_weight_dropout_keeps_the_expected_output_and_the_mask():
    """With dropout on the CPU (the explicit math with the cheap mask): averaged over many draws
    the output is the undropped one; a masked key never reaches a query."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 1, 6, 4) for _ in range(3))
    mask = torch.ones(6, 6, dtype=torch.bool).tril()
    mean = torch.stack([attention(q, k, v, mask, 0.3) for _ in range(4000)]).mean(0)
    torch.testing.assert_close(mean, attention(q, k, v, mask, 0.0), atol=0.05, rtol=0)
    v_future = v.clone()
    v_future[..., 3:, :] += 100.0  # later frames' values: invisible to the first three queries
    torch.manual_seed(1)
    a = attention(q, k, v, mask, 0.3)
    torch.manual_seed(1)
    assert torch.equal(a[..., :3, :], attention(q, k, v_future, mask, 0.3)[..., :3, :])


def test_attention_layers_take_the_attention_dropout_setting():
    """``attention_dropout`` sets every attention layer's weight dropout, in every part that
    holds one; the other dropouts keep ``dropout``; None: the same rate as ``dropout``."""
    for encoder in ("local_global", "conformer"):
        conf = {"kernel": 3} if encoder == "conformer" else TINY_MODEL["encoder_conf"]
        net = tiny_model(encoder=encoder, encoder_conf=conf, dropout=0.2, attention_dropout=0.0)
        layers = [m for m in net.modules() if isinstance(m, Attention)]
        assert len(layers) >= 3 and all(a.dropout.p == 0.0 for a in layers)
        weights = {id(a.dropout) for a in layers}
        others = [m.p for m in net.modules() if isinstance(m, Dropout) and id(m) not in weights]
        assert others and set(others) == {0.2}
    net = tiny_model(dropout=0.2)
    assert {m.p for m in net.modules() if isinstance(m, nn.Dropout)} == {0.2}
    with pytest.raises(ValueError, match="attention_dropout"):
        tiny_model(attention_dropout=1.0)
