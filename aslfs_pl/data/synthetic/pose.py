"""The pose skeleton: an upright body whose head follows the face and whose signing arm follows
the signing hand."""

from __future__ import annotations

import numpy as np

from aslfs_pl.data.synthetic.noise import smooth_noise

# MediaPipe's 33 pose points in image coordinates of an upright signer centred at x = 0.5. "left"
# is the signer's left, i.e. image right (larger x).
_POSE = np.array(
    [
        [0.50, 0.30, -1.10],  # 0 nose
        [0.52, 0.26, -1.05],  # 1 left eye inner
        [0.53, 0.26, -1.05],  # 2 left eye
        [0.545, 0.26, -1.05],  # 3 left eye outer
        [0.48, 0.26, -1.05],  # 4 right eye inner
        [0.47, 0.26, -1.05],  # 5 right eye
        [0.455, 0.26, -1.05],  # 6 right eye outer
        [0.58, 0.28, -0.75],  # 7 left ear
        [0.42, 0.28, -0.75],  # 8 right ear
        [0.52, 0.345, -0.98],  # 9 mouth left
        [0.48, 0.345, -0.98],  # 10 mouth right
        [0.66, 0.55, -0.50],  # 11 left shoulder
        [0.34, 0.55, -0.50],  # 12 right shoulder
        [0.72, 0.80, -0.40],  # 13 left elbow
        [0.28, 0.80, -0.40],  # 14 right elbow
        [0.72, 1.02, -0.50],  # 15 left wrist
        [0.28, 1.02, -0.50],  # 16 right wrist
        [0.73, 1.06, -0.55],  # 17 left pinky
        [0.27, 1.06, -0.55],  # 18 right pinky
        [0.72, 1.07, -0.55],  # 19 left index
        [0.28, 1.07, -0.55],  # 20 right index
        [0.71, 1.05, -0.52],  # 21 left thumb
        [0.29, 1.05, -0.52],  # 22 right thumb
        [0.62, 1.12, 0.00],  # 23 left hip
        [0.38, 1.12, 0.00],  # 24 right hip
        [0.63, 1.60, 0.10],  # 25 left knee
        [0.37, 1.60, 0.10],  # 26 right knee
        [0.63, 2.05, 0.50],  # 27 left ankle
        [0.37, 2.05, 0.50],  # 28 right ankle
        [0.63, 2.10, 0.52],  # 29 left heel
        [0.37, 2.10, 0.52],  # 30 right heel
        [0.62, 2.14, 0.30],  # 31 left foot index
        [0.38, 2.14, 0.30],  # 32 right foot index
    ]
)  # (33, 3)
_HEAD = np.arange(11)  # nose, eyes, ears, mouth: they move with the face


def draw_pose(
    rng: np.random.Generator,
    t: np.ndarray,
    side: float,
    wrist: np.ndarray,
    hand: np.ndarray,
    rest_wrist: np.ndarray,
    noise_scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The skeleton of every frame, before the camera's view.

    Args:
        rng: the sequence's generator.
        t: (T,) frame times.
        side: +1 when the signing hand is the signer's right (image left), -1 for the left.
        wrist: (T, 2) wrist of the signing hand.
        hand: (T, 21, 3) the signing hand in image space (the pose's hand points copy it).
        rest_wrist: (T, 2) wrist of the resting hand.
        noise_scale: multiplier of the jitter noise.

    Returns:
        (head motion (T, 2), which the face follows too, and pose (T, 33, 3)).
    """
    head = smooth_noise(rng, t, 0.005, 2)  # (T, 2)
    pose = np.repeat(_POSE[None], len(t), 0)  # (T, 33, 3)
    pose[:, _HEAD, :2] += head[:, None, :]
    pose[:, 11:, :2] += smooth_noise(rng, t, 0.003, 2)[:, None, :]
    dom, non = (16, 15) if side > 0 else (15, 16)  # dominant / resting wrist
    dom_sh = 12 if side > 0 else 11
    pose[:, dom, :2] = wrist
    pose[:, dom, 2] = -0.9
    pose[:, dom - 2, 0] = 0.5 * (pose[:, dom_sh, 0] + wrist[:, 0]) - 0.05 * side  # elbow
    pose[:, dom - 2, 1] = np.maximum(pose[:, dom_sh, 1], wrist[:, 1]) + 0.18
    for p_idx, h_idx in ((dom + 2, 17), (dom + 4, 6), (dom + 6, 2)):  # pinky, index, thumb
        pose[:, p_idx, :2] = hand[:, h_idx, :2]
        pose[:, p_idx, 2] = -0.95
    pose[:, non, :2] = rest_wrist
    pose += rng.normal(0.0, 0.002 * noise_scale, pose.shape)
    return head, pose
