"""Adversarial weight perturbation: the move, its bound, and the exact restore."""

import pytest
import torch

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
