"""The hand model: a small kinematic hand and the fixed alphabet of 59 character shapes.

Hand-local axes: u = image x (right), v = up (image -y), w = towards the camera. A right hand, palm
facing the camera, fingers up, has its thumb on the +u side. The 21 points are MediaPipe's: 0 wrist,
1-4 thumb, 5-8 index, 9-12 middle, 13-16 ring, 17-20 pinky.

The alphabet comes from its own fixed random generator (``SHAPE_SEED``), so every dataset shares
it whatever its ``seed``: a model trained on one synthetic dataset reads another.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from aslfs_pl.vocab import NUM_CHARACTERS

#: Seed of the character shape alphabet: independent of the dataset seed on purpose.
SHAPE_SEED: int = 12345

_FINGER_BASES = np.array(
    [[0.30, 0.95, 0.0], [0.05, 1.00, 0.0], [-0.20, 0.93, 0.0], [-0.42, 0.80, 0.0]]
)  # (4, 3) MCP joints of index, middle, ring, pinky
_FINGER_SPLAY = np.array(
    [0.12, 0.0, -0.10, -0.22]
)  # (4,) rest in-plane angle (rad, + = thumb side)
_FINGER_SEGMENTS = np.array(
    [[0.45, 0.27, 0.22], [0.50, 0.30, 0.23], [0.46, 0.28, 0.22], [0.36, 0.22, 0.20]]
)  # (4, 3) proximal, middle, distal phalanx lengths
_THUMB_BASE = np.array([0.22, 0.22, 0.06])  # (3,) thumb CMC (point 1)
_THUMB_SEGMENTS = np.array([0.33, 0.30, 0.25])  # (3,) 1->2, 2->3, 3->4
#: Finger-joint prototypes (MCP, PIP, DIP flexion in rad): straight, curled, bent at MCP,
#: hooked, half curled.
_FINGER_PROTOS = np.array(
    [[0.0, 0.0, 0.0], [1.45, 1.75, 1.1], [1.5, 0.05, 0.0], [0.1, 1.55, 1.0], [0.7, 0.8, 0.5]]
)
_FINGER_PROTO_P = np.array([0.34, 0.28, 0.12, 0.12, 0.14])
#: Thumb prototypes (in-plane angle from +v towards +u, out-of-plane angle, bend): out, up,
#: across the palm, tucked, forward.
_THUMB_PROTOS = np.array(
    [[1.15, 0.1, 0.0], [0.35, 0.1, 0.1], [-0.55, 0.7, 0.4], [-0.2, 1.0, 0.8], [0.6, 0.9, 0.2]]
)


def rotation(roll: float, yaw: float, pitch: float) -> np.ndarray:
    """Rotation matrix Rz(roll) @ Ry(yaw) @ Rx(pitch) in hand-local axes; (3, 3)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    return rz @ ry @ rx


def _pose_hand(
    joints: np.ndarray, splay: np.ndarray, thumb: np.ndarray, rot: np.ndarray
) -> np.ndarray:
    """Forward kinematics of one hand shape.

    Args:
        joints: (4, 3) MCP/PIP/DIP flexion angles of index..pinky (rad, towards +w).
        splay: (4,) extra in-plane finger angles (rad).
        thumb: (3,) in-plane angle, out-of-plane angle, bend of the thumb.
        rot: (3, 3) palm orientation.

    Returns:
        (21, 3) points in hand-local axes, wrist at the origin, palm length ~1.
    """
    pts = np.zeros((21, 3))
    normal = np.array([0.0, 0.0, 1.0])
    for f in range(4):
        psi = _FINGER_SPLAY[f] + splay[f]
        d0 = np.array([math.sin(psi), math.cos(psi), 0.0])
        p = _FINGER_BASES[f].copy()
        pts[5 + 4 * f] = p
        phi = 0.0
        for k in range(3):
            phi += joints[f, k]
            p = p + _FINGER_SEGMENTS[f, k] * (math.cos(phi) * d0 + math.sin(phi) * normal)
            pts[6 + 4 * f + k] = p
    beta, alpha, bend = thumb
    p = _THUMB_BASE.copy()
    pts[1] = p
    for k in range(3):
        b = beta - bend * k
        a = alpha + 0.5 * bend * k
        d = np.array([math.sin(b) * math.cos(a), math.cos(b) * math.cos(a), math.sin(a)])
        p = p + _THUMB_SEGMENTS[k] * d
        pts[2 + k] = p
    return pts @ rot.T


def _normalize_xy(shapes: np.ndarray) -> np.ndarray:
    """Wrist-centred, RMS-scaled 2-D hand shapes: (..., 21, >=2) -> (..., 21, 2)."""
    xy = shapes[..., :2] - shapes[..., :1, :2]
    rms = np.sqrt(np.mean(np.sum(xy**2, axis=-1), axis=-1))[..., None, None]
    return xy / np.maximum(rms, 1e-9)


def normalize_hand(points: np.ndarray) -> np.ndarray:
    """Wrist-centred, scale-free 2-D hand shape, for comparing frames with templates.

    Args:
        points: (..., 21, D) hand points with D >= 2 (x, y[, z]) in any units.

    Returns:
        (..., 21, 2) x/y with the wrist at the origin and unit RMS distance to the wrist.
    """
    return _normalize_xy(np.asarray(points, dtype=np.float64))


def _rotation_grid_dist(cand: np.ndarray, ref: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Smallest RMS point distance between candidates and a reference under in-plane rotations.

    Args:
        cand: (N, 21, 2) normalised shapes.
        ref: (21, 2) normalised shape.
        angles: (A,) rotations (rad) applied to ``ref``.

    Returns:
        (N,) distances.
    """
    c, s = np.cos(angles), np.sin(angles)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (A, 2, 2)
    refs = np.einsum("aij,pj->api", rot, ref)  # (A, 21, 2)
    d = np.sqrt(np.mean(np.sum((cand[:, None] - refs[None]) ** 2, -1), -1))  # (N, A)
    return d.min(axis=1)


@lru_cache(maxsize=1)
def shape_alphabet() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixed shape alphabet, drawn once per process.

    The mouth openness is drawn from the same generator, after the shapes: it stays here so that
    the stream, and with it every dataset, stays as it is.

    Returns:
        (templates (59, 21, 3) hand-local, neutral (21, 3), mouth openness per character (59,)).
    """
    rng = np.random.default_rng(SHAPE_SEED)
    n_cand = 2500
    cands = np.empty((n_cand, 21, 3))
    for i in range(n_cand):
        kinds = rng.choice(len(_FINGER_PROTOS), size=4, p=_FINGER_PROTO_P)
        joints = np.clip(_FINGER_PROTOS[kinds] + rng.normal(0.0, 0.12, (4, 3)), -0.1, 1.9)
        splay = rng.normal(0.0, 0.06, 4)
        if rng.random() < 0.25:  # a "v": index and middle apart
            splay[0] += 0.25
            splay[1] -= 0.2
        thumb = _THUMB_PROTOS[rng.integers(len(_THUMB_PROTOS))] + rng.normal(0.0, 0.1, 3)
        if rng.random() < 0.72:
            roll = rng.normal(0.0, 0.3)
        else:
            roll = rng.choice([-1.0, 1.0]) * rng.uniform(1.2, 2.9)
        rot = rotation(roll, rng.normal(0.0, 0.35), rng.normal(0.0, 0.3))
        cands[i] = _pose_hand(joints, splay, thumb, rot)
    # Farthest-point selection under +-25 degree in-plane rotations: clearly separable shapes.
    norm = _normalize_xy(cands)  # (N, 21, 2)
    angles = np.deg2rad(np.arange(-25.0, 25.1, 5.0))
    chosen = [int(rng.integers(n_cand))]
    mind = _rotation_grid_dist(norm, norm[chosen[0]], angles)
    for _ in range(NUM_CHARACTERS - 1):
        nxt = int(np.argmax(mind))
        chosen.append(nxt)
        mind = np.minimum(mind, _rotation_grid_dist(norm, norm[nxt], angles))
    templates = cands[chosen]  # (59, 21, 3)
    neutral = _pose_hand(
        np.full((4, 3), 0.35), np.zeros(4), np.array([0.7, 0.3, 0.1]), rotation(0.0, 0.0, 0.0)
    )
    mouth = rng.uniform(0.0, 1.0, NUM_CHARACTERS)
    return templates, neutral, mouth


def character_templates() -> np.ndarray:
    """The 59 character hand shapes as a right hand would show them in image axes.

    Index ``i`` is the shape of ``vocab.CHARACTERS[i]``. Axes are (x right, y down, z), the wrist
    is at the origin and the palm length is ~1; a left-handed signer shows the x-mirrored shape.
    Compare frames with :func:`normalize_hand` applied to both.

    Returns:
        (59, 21, 3) float64 array.
    """
    templates, _, _ = shape_alphabet()
    return templates * np.array([1.0, -1.0, -1.0])


def in_image(wrist: np.ndarray, shape: np.ndarray, hand_size: float) -> np.ndarray:
    """Hand-local shapes drawn at image positions (y down, z towards the camera is negative).

    Args:
        wrist: (T, 2) image x, y of the wrist.
        shape: (T, 21, 3) or (21, 3) hand-local points.
        hand_size: image units per hand-local unit.

    Returns:
        (T, 21, 3) image-space points.
    """
    out = np.empty((len(wrist), 21, 3))
    out[..., 0] = wrist[:, None, 0] + hand_size * shape[..., 0]
    out[..., 1] = wrist[:, None, 1] - hand_size * shape[..., 1]
    out[..., 2] = -hand_size * shape[..., 2]
    return out
