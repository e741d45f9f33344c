"""The competition score as a torchmetrics metric.

Score = (N - D) / N with N the total characters of all reference phrases and D the total
Levenshtein distance of the predictions to them: a micro total over the epoch (and over replicas:
the two sums are ``dist_reduce_fx="sum"`` states), which is exactly ``1 - CharErrorRate``.
"""

from __future__ import annotations

from torch import Tensor
from torchmetrics.text import CharErrorRate


class CompetitionScore(CharErrorRate):
    """1 - total edit distance / total reference characters. Empty references are ignored."""

    higher_is_better = True

    def update(self, preds: str | list[str], target: str | list[str]) -> None:
        preds = [preds] if isinstance(preds, str) else list(preds)
        target = [target] if isinstance(target, str) else list(target)
        pairs = [(p, t) for p, t in zip(preds, target, strict=True) if t]
        if pairs:
            super().update([p for p, _ in pairs], [t for _, t in pairs])

    def compute(self) -> Tensor:
        return 1.0 - super().compute()
