"""Adversarial weight perturbation: the move, its bound, and the exact restore."""

from copy import deepcopy

import pytest
import torch
from torch import nn

from aslfs_pl.optim import AdversarialWeights


def test_awp_moves_weights_up_the_gradient_within_the_bound_and_restores_them():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 5))
    v = torch.nn.Parameter(torch.randn(3, 3))
    target = torch.randn(4, 5)
    loss = ((w - target) ** 2).sum() + (v**2).sum()
    loss.backward()
    original = [w.detach().clone(), v.detach().clone()]
    awp = AdversarialWeights([w, v], lr=0.5, eps=0.05)
    saved = awp.perturb()
    for p, before in zip((w, v), original, strict=True):
        delta = p.detach() - before
        assert (delta.abs() <= 0.05 * before.abs() + 1e-7).all()  # elementwise bound
        moved = delta != 0
        assert moved.any()
        assert (torch.sign(delta[moved]) == torch.sign(p.grad[moved])).all()  # up the gradient
    assert ((w - target) ** 2).sum() + (v**2).sum() > loss  # the loss got worse
    awp.restore(saved)
    assert torch.equal(w.detach(), original[0]) and torch.equal(v.detach(), original[1])


def test_awp_leaves_weights_without_gradient_alone_and_rejects_bad_settings():
    w = torch.nn.Parameter(torch.ones(2, 2))
    saved = AdversarialWeights([w], lr=0.1, eps=0.1).perturb()
    assert torch.equal(w.detach(), saved[0])
    with pytest.raises(ValueError, match="lr > 0 and eps > 0"):
        AdversarialWeights([w], lr=0.0, eps=0.1)


def test_ema_update_is_lightnings_average_without_a_host_sync():
    """The project's EMA update (one foreach lerp) gives AveragedModel's EMA of the parameters
    and floating-point buffers, the first update a copy; integer buffers are copied."""
    from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn

    from aslfs_pl.callbacks import EMA

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    ema = EMA(decay=0.9)
    ema._average_model = AveragedModel(net, use_buffers=True)
    reference = AveragedModel(net, use_buffers=True, avg_fn=get_ema_avg_fn(0.9))
    for _ in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net.train()(torch.randn(8, 4))  # moves batch norm's running statistics
        ema.update(net)
        reference.update_parameters(net)
    got, want = ema._average_model.state_dict(), reference.state_dict()
    assert got.keys() == want.keys()
    for name in want:
        if want[name].is_floating_point():
            torch.testing.assert_close(got[name], want[name], msg=name)
    assert int(got["module.1.num_batches_tracked"]) == 3 == int(net[1].num_batches_tracked)
    assert int(got["n_averaged"]) == 3
    assert not torch.equal(got["module.0.weight"], net[0].weight)  # an average, not a copy
    # resumed from a checkpoint (Lightning's format): the next update averages, it does not copy
    resumed = EMA(decay=0.9)
    resumed._average_model = AveragedModel(nn.Sequential(*(deepcopy(m) for m in net)))
    checkpoint = {
        "state_dict": {k[len("module.") :]: v for k, v in got.items() if k.startswith("module.")},
        "current_model_state": net.state_dict(),
        "averaging_state": {"n_averaged": got["n_averaged"]},
    }
    resumed.on_load_checkpoint(None, net, checkpoint)
    resumed.update(net)
    ema.update(net)
    for a, b in zip(
        resumed._average_model.parameters(), ema._average_model.parameters(), strict=True
    ):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="EMA decay = 1.0"):
        EMA(decay=1.0)
