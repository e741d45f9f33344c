"""The dense stem (the 2nd place's): each axis normalised over the whole sequence."""

from __future__ import annotations

import torch

from aslfs_pl.model.config import ModelConfig
from aslfs_pl.model.stems.dense import DenseStem


def test_a_sequence_moved_or_scaled_per_axis_embeds_the_same_and_unseen_values_are_zero():
    torch.manual_seed(0)
    stem = DenseStem(ModelConfig(num_columns=12, dim=8, heads=2, stem="dense", stem_conf={}))
    x = torch.rand(2, 9, 12)
    x[0, 3] = float("nan")  # a frame with nothing seen
    x[1, :, 2] = float("nan")  # a point never seen
    moved = x.clone()
    moved[..., :6] = moved[..., :6] * 3.0 + 1.0  # x axis (columns are axis-major)
    moved[..., 6:] = moved[..., 6:] * 0.5 - 2.0  # y axis
    with torch.no_grad():
        a, mask = stem(x)
        b, _ = stem(moved)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert not mask[0, 3] and mask[1].all()
    # one frame's statistics are the sequence's: changing another frame changes this one
    other = x.clone()
    other[0, 0] += 1.0
    with torch.no_grad():
        assert not torch.allclose(stem(other)[0][0, 5], a[0, 5])
