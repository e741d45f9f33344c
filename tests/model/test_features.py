"""Pure tensor functions of the features (the same ones run inside the exported graph)."""

import numpy as np
import torch

from aslfs_pl.model.features import (
    fit_length,
    frame_features,
    frame_mask,
    landmark_features,
    normalise_frames,
    to_points,
)

NAN = float("nan")


def test_to_points_is_axis_major():
    x = torch.arange(12.0).reshape(1, 12)  # x0..x5, y0..y5
    pts = to_points(x, 2)
    assert pts.shape == (1, 6, 2)
    assert pts[0, 1].tolist() == [1.0, 7.0]


def test_normalise_frames_removes_shift_and_scale_per_frame():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(5, 10, 2, generator=g)
    pts[2, 3] = NAN
    moved = pts * torch.tensor([3.0]).reshape(1, 1, 1) + torch.rand(5, 1, 2, generator=g)
    a, b = normalise_frames(pts), normalise_frames(moved)
    assert torch.isnan(a[2, 3]).all()
    torch.testing.assert_close(torch.nan_to_num(a), torch.nan_to_num(b), atol=1e-5, rtol=1e-4)
    ok = ~torch.isnan(a[..., 0])
    means = torch.stack([a[t][ok[t]].mean(0) for t in range(5)])
    torch.testing.assert_close(means, torch.zeros(5, 2), atol=1e-5, rtol=0)


def test_features_shapes_mask_displacements_and_no_nan():
    x = torch.rand(2, 6, 8)
    x[0, 2] = NAN  # a whole frame missing
    x[1, :, :2] = NAN  # two columns never seen
    feats, mask = landmark_features(x, num_axes=2)
    assert feats.shape == (2, 6, 24) and mask.shape == (2, 6)
    assert not torch.isnan(feats).any()
    assert mask[0].tolist() == [True, True, False, True, True, True]
    assert mask[1].all()
    pos = feats[..., :8]
    d1, d2 = feats[..., 8:16], feats[..., 16:]
    torch.testing.assert_close(d1[1, 3], pos[1, 3] - pos[1, 2])
    torch.testing.assert_close(d2[1, 5], pos[1, 5] - pos[1, 3])
    assert (d1[:, 0] == 0).all() and (d2[:, :2] == 0).all()  # no past frame
    assert (d1[0, 3] == 0).all() and (d2[0, 4] == 0).all()  # the NaN frame contributes 0


def test_frame_mask_marks_padding():
    x = torch.full((4, 3), NAN)
    x[0, 1] = 0.5
    assert frame_mask(x).tolist() == [True, False, False, False]


def test_fit_length_pads_with_nan_and_resamples_long_sequences():
    short = np.arange(6, dtype=np.float32).reshape(3, 2)
    out = fit_length(short, 5)
    assert out.shape == (5, 2) and np.isnan(out[3:]).all() and (out[:3] == short).all()
    long = np.arange(20, dtype=np.float32).reshape(10, 2)
    out = fit_length(long, 4)
    assert out[:, 0].tolist() == [0.0, 4.0, 10.0, 14.0]  # frames 0, 2, 5, 7: evenly spaced
    assert fit_length(np.zeros((0, 2), np.float32), 3).shape == (3, 2)


def test_deployment_features_equal_training_features_reordered():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, (12, 3 * 5)).astype(np.float32)  # 5 points, 3 axes
    x[2] = np.nan  # a frame with nothing seen
    x[4:7, :2] = np.nan  # points missing
    x = torch.from_numpy(x)
    train, mask = landmark_features(x, 3)  # point-major blocks: x0, y0, z0, x1, ...
    deploy, valid = frame_features(x, 3)  # axis-major blocks: x0, x1, ..., y0, ...
    order = [b * 15 + i + 3 * p for b in range(3) for i in range(3) for p in range(5)]
    torch.testing.assert_close(deploy, train[:, order])
    assert valid[:, 0].bool().tolist() == mask.tolist()


def test_values_that_are_not_positions_are_missing_landmarks():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.uniform(0.2, 0.8, (6, 12)).astype(np.float32))
    clean = x.clone()
    clean[1, 3] = clean[2, 0] = clean[3, 7] = float("nan")
    x[1, 3], x[2, 0], x[3, 7] = float("inf"), -float("inf"), 1e30
    x[4] = float("inf")  # a frame with nothing but absurd values is not a frame
    clean[4] = float("nan")
    feats, mask = landmark_features(x[None], 2)
    ref_feats, ref_mask = landmark_features(clean[None], 2)
    assert torch.isfinite(feats).all()
    torch.testing.assert_close(feats, ref_feats)
    assert mask.tolist() == ref_mask.tolist() and not mask[0, 4]
