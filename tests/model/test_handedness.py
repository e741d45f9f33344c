"""The left-hander flip: which sequences it mirrors, how, and its deployment twin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aslfs_pl.data.augment.geometry import flip as mirror_points
from aslfs_pl.data.landmarks import LandmarkSet
from aslfs_pl.model.config import ModelConfig
from aslfs_pl.model.handedness import LeftHandFlip

LANDMARKS = LandmarkSet()  # both hands, lips, pose; x and y


def signer(t: int, hand: str, seed: int = 0) -> np.ndarray:
    """(T, C) raw columns of the default set: the ``hand`` seen in every frame, the other hand
    in a third of them."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0.2, 0.8, (t, LANDMARKS.num_axes, LANDMARKS.num_points)).astype(np.float32)
    other = LANDMARKS.part_slices()["right_hand" if hand == "left" else "left_hand"]
    pts[np.ix_(rng.random(t) < 0.67, np.arange(LANDMARKS.num_axes), other)] = np.nan
    return pts.reshape(t, -1)


def mirrored(x: np.ndarray) -> np.ndarray:
    """What the random flip augmentation makes of (T, C) columns."""
    pts = x.reshape(len(x), LANDMARKS.num_axes, -1)
    return mirror_points(pts, LANDMARKS.mirror_permutation()).reshape(len(x), -1)


def test_hand_columns_pair_each_column_with_its_mirror_image_on_the_same_axis():
    cols, names = LANDMARKS.hand_columns(), LANDMARKS.selected_columns
    assert names[cols["mirror"][names.index("x_left_hand_3")]] == "x_right_hand_3"
    assert names[cols["mirror"][names.index("y_face_61")]] == "y_face_291"
    assert [names[i] for i in cols["left_hand"]] == [f"x_left_hand_{i}" for i in range(21)]
    assert all(names[i].startswith("x_") for i in cols["x"]) and len(cols["x"]) == 88
    assert LandmarkSet(axes=("y", "z")).hand_columns()["x"] == []


def test_a_left_handed_sequence_is_mirrored_as_the_flip_augmentation_does_and_no_other():
    flip = LeftHandFlip(LANDMARKS.hand_columns())
    left, right = signer(30, "left"), signer(30, "right", seed=1)
    padded = np.full((2, 40, left.shape[1]), np.nan, np.float32)  # NaN rows: padding
    padded[0, :30], padded[1, :30] = left, right
    out = flip(torch.from_numpy(padded)).numpy()
    np.testing.assert_array_equal(out[0, :30], mirrored(left))  # each row decides alone
    np.testing.assert_array_equal(out[1], padded[1])  # a right-handed signer: unchanged
    assert np.isnan(out[0, 30:]).all()
    twice = flip(flip(torch.from_numpy(padded)))  # the mirror image is right-handed: kept
    np.testing.assert_array_equal(twice.numpy(), out)


def test_the_twin_flips_one_sequence_as_the_batch_does():
    flip = LeftHandFlip(LANDMARKS.hand_columns())
    twin = flip.export_form()
    for x in (signer(25, "left", seed=2), signer(7, "right", seed=3)):
        x[3, 5] = np.inf  # not a landmark position: mirrored like any value (read as missing)
        want = flip(torch.from_numpy(x)[None])[0]
        torch.testing.assert_close(twin(torch.from_numpy(x)), want, equal_nan=True)


def test_the_flip_needs_both_hands_of_the_landmark_set():
    no_hands = LandmarkSet(left_hand=(), right_hand=())
    with pytest.raises(ValueError, match="flip_left_handed needs both hands"):
        ModelConfig(flip_left_handed=True)  # nothing set from the data
    with pytest.raises(ValueError, match="flip_left_handed needs both hands"):
        ModelConfig(
            num_columns=no_hands.num_columns,
            hand_columns=no_hands.hand_columns(),
            flip_left_handed=True,
        )
    with pytest.raises(ValueError, match="describes 176 columns"):
        ModelConfig(num_columns=12, hand_columns=LANDMARKS.hand_columns(), flip_left_handed=True)
