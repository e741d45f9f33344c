"""The optimiser pieces: Lookahead around an inner optimiser, the warm-up + cosine schedule, and
adversarial weight perturbation (the move, its bound, and the exact restore)."""

import math
from copy import deepcopy

import pytest
import torch

from aslfs_pl.optim import AdversarialWeights, Lookahead, warmup_cosine


def constant_gradient_step(opt: torch.optim.Optimizer, w: torch.Tensor, g: torch.Tensor) -> None:
    """One step of ``opt`` on the loss ``(w * g).sum()``, whose gradient is ``g`` everywhere."""
    opt.zero_grad()
    (w * g).sum().backward()
    opt.step()


def test_lookahead_moves_the_slow_weights_alpha_of_the_way_every_k_steps():
    w0 = torch.tensor([1.0, -2.0, 3.0])
    g = torch.tensor([0.5, 1.0, -1.0])
    w = torch.nn.Parameter(w0.clone())
    inner = torch.optim.SGD([w], lr=0.1)
    opt = Lookahead(inner, k=3, alpha=0.5)
    assert opt.param_groups is inner.param_groups  # a scheduler of opt drives the inner lr
    seen = []
    for _ in range(6):
        constant_gradient_step(opt, w, g)
        seen.append(w.detach().clone())
    step = 0.1 * g  # one SGD step
    # steps 1, 2: the inner optimiser alone; step 3: slow = w0 + 0.5 (fast - w0), fast = slow
    torch.testing.assert_close(seen[0], w0 - step)
    torch.testing.assert_close(seen[1], w0 - 2 * step)
    torch.testing.assert_close(seen[2], w0 - 1.5 * step)
    torch.testing.assert_close(seen[3], w0 - 2.5 * step)  # from the synced weights
    torch.testing.assert_close(seen[5], w0 - 3.0 * step)  # slow moved half of 3 steps again
    torch.testing.assert_close(opt.slow[w], seen[5])
    assert opt.steps == 6
    # alpha = 1 is the inner optimiser itself
    v = torch.nn.Parameter(w0.clone())
    plain = Lookahead(torch.optim.SGD([v], lr=0.1), k=2, alpha=1.0)
    for _ in range(4):
        constant_gradient_step(plain, v, g)
    torch.testing.assert_close(v.detach(), w0 - 4 * step)
    for k, alpha in ((0, 0.5), (5, 0.0), (5, 1.5)):
        with pytest.raises(ValueError, match="lookahead needs k >= 1 and 0 < alpha <= 1"):
            Lookahead(torch.optim.SGD([v], lr=0.1), k=k, alpha=alpha)


def test_lookahead_state_dict_round_trip_continues_exactly():
    torch.manual_seed(0)
    gradients = [torch.randn(4, 3) for _ in range(9)]
    w = torch.nn.Parameter(torch.randn(4, 3))
    opt = Lookahead(torch.optim.Adam([w], lr=0.05), k=3, alpha=0.5)
    for g in gradients[:4]:  # one sync behind it, one step into the next period
        constant_gradient_step(opt, w, g)
    saved = deepcopy(opt.state_dict())  # what a checkpoint holds
    assert saved["steps"] == 4 and (saved["k"], saved["alpha"]) == (3, 0.5)
    assert saved["inner"]["state"][0]["step"] == 4  # the inner optimiser's own state
    resumed_w = torch.nn.Parameter(w.detach().clone())
    resumed = Lookahead(torch.optim.Adam([resumed_w], lr=0.05), k=3, alpha=0.5)
    resumed.load_state_dict(saved)
    assert resumed.steps == 4 and torch.equal(resumed.slow[resumed_w], opt.slow[w])
    for g in gradients[4:]:  # syncs at steps 6 and 9, as in the run that never stopped
        constant_gradient_step(opt, w, g)
        constant_gradient_step(resumed, resumed_w, g)
        assert torch.equal(resumed_w, w)
    assert torch.equal(resumed.slow[resumed_w], opt.slow[w])


def test_lookahead_under_a_step_scheduler_steps_with_the_scheduled_rate():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = Lookahead(torch.optim.SGD([w], lr=1.0), k=100, alpha=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(2, 10))
    moves = []
    for _ in range(3):
        before = w.detach().clone()
        constant_gradient_step(opt, w, torch.ones(1))
        scheduler.step()
        moves.append(float(before - w.detach()))
    assert moves == pytest.approx([0.5, 1.0, 1.0])  # warm-up 1/2, 2/2, then the full rate


def test_warmup_cosine_rises_linearly_then_falls_as_a_cosine_to_the_final_ratio():
    f = warmup_cosine(4, 12)
    assert [f(s) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # from ~0 to 1
    assert f(4) == pytest.approx(1.0)  # the decay starts at the top
    assert f(6) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))  # a quarter of the way
    assert f(8) == pytest.approx(0.5)  # half way
    assert f(12) == pytest.approx(0.0) and f(30) == pytest.approx(0.0)  # 0 at the end, stays
    decay = [f(s) for s in range(4, 13)]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))
    g = warmup_cosine(4, 12, final_ratio=0.1)
    assert g(2) == pytest.approx(0.75)  # the warm-up does not depend on it
    assert (
        g(8) == pytest.approx(0.55) and g(12) == pytest.approx(0.1) and g(99) == pytest.approx(0.1)
    )
    h = warmup_cosine(1, 1)  # one warm-up step and nothing after it
    assert h(0) == pytest.approx(1.0) and h(1) == pytest.approx(1.0) and h(2) == pytest.approx(0.0)


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
