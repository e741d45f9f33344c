"""The face mesh: a canonical face whose lips mouth the letters, moved by the head.

Many signers mouth what they spell, and most public ASL solutions read the lips, so the lip contour
moves with the characters (each character has its own mouth openness from the shape alphabet).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from aslfs_pl.data.landmarks import LIPS
from aslfs_pl.data.synthetic.camera import CameraView
from aslfs_pl.data.synthetic.hands import SHAPE_SEED, shape_alphabet
from aslfs_pl.data.synthetic.noise import bank_noise
from aslfs_pl.data.synthetic.timing import Frames

# Lip contours (MediaPipe face-mesh indices), each listed from its image-left end.
_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
_OUTER_LOWER = (146, 91, 181, 84, 17, 314, 405, 321, 375)
_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
_INNER_LOWER = (95, 88, 178, 87, 14, 317, 402, 318, 324)


@lru_cache(maxsize=1)
def face_template() -> tuple[np.ndarray, np.ndarray]:
    """Canonical face mesh (image coordinates of an upright signer centred at x = 0.5) and the
    per-point y displacement of an open mouth.

    Returns:
        (face (468, 3), mouth_open_dy (468,)).
    """
    rng = np.random.default_rng(SHAPE_SEED + 1)
    cx, cy = 0.5, 0.27
    r = np.sqrt(rng.uniform(0.0, 1.0, 468))
    t = rng.uniform(0.0, 2 * np.pi, 468)
    face = np.stack(
        [cx + 0.075 * r * np.cos(t), cy + 0.1 * r * np.sin(t), -0.06 * (1 - r**2) + 0.01 * r], -1
    )
    dy = np.zeros(468)
    mx, my = 0.5, 0.345
    for idx, half_w, half_h, start, lower in (
        (_OUTER_UPPER, 0.032, 0.011, 180.0, False),
        (_INNER_UPPER, 0.024, 0.004, 180.0, False),
        (_OUTER_LOWER, 0.032, 0.013, 198.0, True),
        (_INNER_LOWER, 0.024, 0.004, 198.0, True),
    ):
        ang = np.deg2rad(start + (18.0 if lower else -18.0) * np.arange(len(idx)))
        ids = np.array(idx)
        face[ids, 0] = mx + half_w * np.cos(ang)
        face[ids, 1] = my - half_h * np.sin(ang)
        face[ids, 2] = -0.03 - 0.01 * np.abs(np.sin(ang))
        if lower:
            dy[ids] = 0.012 * np.abs(np.sin(ang))
        else:
            dy[ids] = -0.003 * np.abs(np.sin(ang))
    face[[1, 4], :] = [[0.5, 0.30, -0.09], [0.5, 0.295, -0.095]]  # nose tip
    assert set(LIPS) <= set(_OUTER_UPPER + _OUTER_LOWER + _INNER_UPPER + _INNER_LOWER)
    return face, dy


def draw_face(
    out: np.ndarray,
    rng: np.random.Generator,
    idx: np.ndarray,
    frames: Frames,
    head: np.ndarray,
    view: CameraView,
    noise_scale: float,
) -> None:
    """Write the face of every frame into ``out``, float32 like Kaggle's columns.

    Args:
        out: (3, 468, T) float32 face columns (axis, point, frame) to fill.
        rng: the sequence's generator.
        idx: (n,) the phrase's character indices.
        frames: the frame schedule (the mouth follows the letters like the hand does).
        head: (T, 2) head motion, the same the pose's head points follow.
        view: the camera's view of the body.
        noise_scale: multiplier of the jitter noise.
    """
    face, mouth_dy = face_template()
    key_mouth = np.concatenate([shape_alphabet()[2][idx], [0.1]])  # letters, then the rest pose
    alpha = frames.alpha[:, 0]
    mouth = (1 - alpha) * key_mouth[frames.a] + alpha * key_mouth[frames.b]
    mouth = np.clip(mouth + rng.normal(0.0, 0.1, frames.num_frames), 0.0, 1.2)  # (T,)
    out[:] = view.place(face).T[:, :, None]
    out[:2] += (head @ view.linear.T).T[:, None, :].astype(np.float32)
    mouth_xy = np.stack([np.zeros(468), mouth_dy], -1) @ view.linear.T  # (468, 2)
    out[:2] += mouth_xy.T[:, :, None].astype(np.float32) * mouth.astype(np.float32)
    out += bank_noise(rng, out.shape, np.float32(0.0008 * noise_scale * view.scale))
