"""Lookahead (Zhang et al. 2019, arXiv:1907.08610) around any torch optimiser, the schedule, and
adversarial weight perturbation.

No maintained library ships a Lookahead that wraps ``torch.optim`` optimisers without extra
dependencies, so it is written here: a few tensor ops every ``k`` steps, no host syncs (safe on
XLA), and a state_dict that holds the inner optimiser's state, the slow weights and the counter,
so a resumed run continues exactly.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch.optim import Optimizer


class Lookahead(Optimizer):
    """Every ``k`` inner steps: slow += alpha * (fast - slow); fast = slow."""

    def __init__(self, optimizer: Optimizer, k: int = 5, alpha: float = 0.5):
        if k < 1 or not 0.0 < alpha <= 1.0:
            raise ValueError(f"lookahead needs k >= 1 and 0 < alpha <= 1, got k={k}, alpha={alpha}")
        self.optimizer = optimizer
        self.k, self.alpha = k, alpha
        self.steps = 0
        self.slow: dict[torch.Tensor, torch.Tensor] = {}
        # Share the inner optimiser's groups so LR schedulers and Lightning see one set.
        self.param_groups = optimizer.param_groups
        self.defaults = optimizer.defaults
        self.state = defaultdict(dict)
        self._optimizer_step_pre_hooks = {}
        self._optimizer_step_post_hooks = {}
        self._optimizer_state_dict_pre_hooks = {}
        self._optimizer_state_dict_post_hooks = {}
        self._optimizer_load_state_dict_pre_hooks = {}
        self._optimizer_load_state_dict_post_hooks = {}

    def _params(self):
        return [p for g in self.param_groups for p in g["params"]]

    @torch.no_grad()
    def _init_slow(self) -> None:
        for p in self._params():
            if p not in self.slow:
                self.slow[p] = p.detach().clone()

    def step(self, closure=None):
        self._init_slow()
        loss = self.optimizer.step(closure)
        self.steps += 1
        if self.steps % self.k == 0:
            with torch.no_grad():
                for p in self._params():
                    slow = self.slow[p]
                    slow.add_(p - slow, alpha=self.alpha)
                    p.copy_(slow)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        self._init_slow()
        return {
            "inner": self.optimizer.state_dict(),
            "slow": [self.slow[p] for p in self._params()],
            "steps": self.steps,
            "k": self.k,
            "alpha": self.alpha,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizer.load_state_dict(state_dict["inner"])
        self.param_groups = self.optimizer.param_groups
        params = self._params()
        if len(state_dict["slow"]) != len(params):
            raise ValueError("lookahead state does not match the parameters")
        with torch.no_grad():
            self.slow = {
                p: s.to(p.device, p.dtype).clone()
                for p, s in zip(params, state_dict["slow"], strict=True)
            }
        self.steps = int(state_dict["steps"])

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, {self.optimizer!r})"


def warmup_cosine(warmup_steps: int, total_steps: int, final_ratio: float = 0.0):
    """LR factor per step: linear warm-up from ~0 to 1, then cosine decay to ``final_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class AdversarialWeights:
    """Adversarial weight perturbation (AWP, Wu et al. 2020, arXiv:2004.05884).

    After the clean backward pass, each weight moves up its own gradient by ``lr`` times its norm
    (``w += lr * |w| * g / |g|``), clipped to within ``eps * |w|`` of where it was, elementwise;
    the loss at the perturbed weights is backpropagated into the same gradients, then the weights
    are put back exactly. The optimiser thus steps against a loss that is also low in a
    neighbourhood of the weights (a flatter minimum). Tensor ops only: no host syncs.

    Args:
        params: the weights to perturb (matrices: norms, biases and embeddings are usually left
            alone).
        lr: step size relative to each weight's norm.
        eps: largest change of an element, relative to its magnitude.
    """

    def __init__(self, params: list[torch.Tensor], lr: float, eps: float):
        if lr <= 0 or eps <= 0:
            raise ValueError(f"AWP needs lr > 0 and eps > 0, got lr={lr}, eps={eps}")
        self.params, self.lr, self.eps = params, lr, eps

    @torch.no_grad()
    def perturb(self) -> list[torch.Tensor]:
        """Move the weights; returns their originals for :meth:`restore`."""
        saved = []
        for p in self.params:
            saved.append(p.detach().clone())
            if p.grad is None:
                continue
            step = self.lr * p.norm() * p.grad / (p.grad.norm() + 1e-12)
            bound = self.eps * p.abs()
            p.add_(torch.maximum(torch.minimum(step, bound), -bound))
        return saved

    @torch.no_grad()
    def restore(self, saved: list[torch.Tensor]) -> None:
        for p, original in zip(self.params, saved, strict=True):
            p.copy_(original)
