import pytest
import torch

from aslfs_pl.metrics import CompetitionScore, WeightedMean


def test_competition_score_is_a_micro_total():
    m = CompetitionScore()
    m.update(["abc", "xyz"], ["abd", "xyzw"])  # 1 edit / 3 chars, 1 edit / 4 chars
    m.update("", "hello")  # 5 edits / 5 chars
    assert float(m.compute()) == pytest.approx(1 - 7 / 12)


def test_competition_score_ignores_empty_references_and_can_be_negative():
    m = CompetitionScore()
    m.update(["abc", "anything"], ["", "a"])
    assert float(m.compute()) == pytest.approx(1 - 7 / 1)


def test_weighted_mean_uses_the_weights():
    m = WeightedMean()
    v = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    w = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    m.update(v, w)
    m.update(torch.tensor(0.0), torch.tensor(4.0))
    assert float(m.compute()) == pytest.approx(3 / 8)
    m.reset()
    m.update(torch.tensor([2.0]), 10.0)
    m.update(torch.tensor([4.0]), 30.0)
    assert float(m.compute()) == pytest.approx(3.5)
