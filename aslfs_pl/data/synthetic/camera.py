"""The camera's view of the signer: one similarity transform of the whole body per sequence."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from aslfs_pl.data.synthetic import difficulty as hard
from aslfs_pl.data.synthetic.difficulty import Difficulty
from aslfs_pl.data.synthetic.participants import Participant

_CENTRE = np.array([0.5, 0.5])  # the body turns and scales about the image centre


@dataclass(frozen=True)
class CameraView:
    """Where the body lands in the image: x/y rotated and scaled about the centre, then shifted."""

    linear: np.ndarray
    """(2, 2) rotation and x/y scale of image x, y."""
    shift: np.ndarray
    """(2,) image x, y shift."""
    scale: float
    """Scale of z (and of the face's jitter): the mean x/y scale."""

    def place(self, pts: np.ndarray) -> np.ndarray:
        """(..., 3) body points (image units of an upright signer) as the camera sees them."""
        out = np.empty_like(pts)
        out[..., :2] = (pts[..., :2] - _CENTRE) @ self.linear.T + _CENTRE + self.shift
        out[..., 2] = pts[..., 2] * self.scale
        return out


def draw_view(
    rng: np.random.Generator, participant: Participant, difficulty: Difficulty, key: Iterable[int]
) -> CameraView:
    """A camera tilted by up to +-15 deg, at the participant's distance and place give or take a
    little; the ``camera`` difficulty factor widens all of it."""
    theta = np.deg2rad(rng.uniform(-15.0, 15.0))
    scale = float(np.clip(participant.body_scale * rng.uniform(0.85, 1.15), 0.8, 1.2))
    shift = participant.body_shift + rng.uniform(-0.08, 0.08, 2)
    theta, scale_xy, shift = hard.camera_view(difficulty, key, theta, scale, shift)
    linear = scale_xy[:, None] * np.array(
        [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]
    )  # (2, 2)
    return CameraView(linear=linear, shift=shift, scale=float(scale_xy.mean()))
