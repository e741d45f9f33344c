"""The competition score as a torchmetrics metric.

Score = (N - D) / N with N the total characters of all reference phrases and D the total
Levenshtein distance of the predictions to them: a micro total over the epoch (and over replicas:
the two sums are ``dist_reduce_fx="sum"`` states), which is exactly ``1 - CharErrorRate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.text import edit_distance
from torchmetrics.text import CharErrorRate


class WeightedMean(Metric):
    """sum(value * weight) / sum(weight) over the epoch, reduced across replicas.

    Masked accuracy and loss use it with the target mask as weight. torchmetrics' MeanMetric
    would do, but its only mode without a host sync per update (``nan_strategy="disable"``)
    ignores the weights (torchmetrics 1.9); this keeps two summed states and no sync.
    """

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("weighted", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("weight", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: Tensor, weight: Tensor | float = 1.0) -> None:
        value = torch.as_tensor(value, dtype=torch.float32, device=self.weighted.device)
        weight = torch.broadcast_to(
            torch.as_tensor(weight, dtype=torch.float32, device=value.device), value.shape
        )
        self.weighted += (value * weight).sum()
        self.weight += weight.sum()

    def compute(self) -> Tensor:
        return self.weighted / self.weight.clamp(min=1e-12)


class CompetitionScore(CharErrorRate):
    """1 - total edit distance / total reference characters. Empty references are ignored."""

    higher_is_better = True

    def update(self, preds: str | list[str], target: str | list[str]) -> None:
        preds = [preds] if isinstance(preds, str) else list(preds)
        target = [target] if isinstance(target, str) else list(target)
        pairs = [(p, t) for p, t in zip(preds, target, strict=True) if t]
        if not pairs:
            return
        errors = edit_distance([p for p, _ in pairs], [t for _, t in pairs], reduction="sum")
        # Both counts in one copy to the device. On XLA a 0-dim host tensor (what the parent's
        # update adds) enters the graph by value: 0 and 1 as constants, equal values as one
        # shared input, so the graph, and a compilation, would depend on the scores.
        counts = torch.tensor([float(errors), float(sum(len(t) for _, t in pairs))])
        counts = counts.to(self.errors.device)
        self.errors += counts[0]
        self.total += counts[1]

    def compute(self) -> Tensor:
        return 1.0 - super().compute()


def decoding_scores(metrics: Mapping[str, Any], decoding: str) -> dict[str, float]:
    """Each decoding's held-out score among the logged ``metrics`` (``val/score_<decoding>``,
    logged with the CTC head), or the configured ``decoding``'s ``val/score`` alone."""
    scores = {
        k.removeprefix("val/score_"): float(v)
        for k, v in metrics.items()
        if k.startswith("val/score_")
    }
    if not scores and "val/score" in metrics:
        scores = {decoding: float(metrics["val/score"])}
    return scores
