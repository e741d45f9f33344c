"""Synthetic fingerspelling data written in Kaggle's exact file layout.

The real competition data cannot be downloaded here, so tests, smoke runs and small training
experiments use this generator. It writes ``character_to_prediction_index.json``, ``train.csv``
(and optionally ``supplemental_metadata.csv``) plus ``train_landmarks/<file_id>.parquet`` files with
the 1,629 float32 landmark columns in Kaggle's order, so every reader written for the real data
reads it unchanged.

The data carries learnable signal while keeping the awkward parts of the real recordings:

* every one of the 59 characters is a distinct 21-point hand shape built from a small hand
  kinematic model (finger curls, thumb pose, palm orientation); the shape alphabet comes from a
  fixed random generator, so all datasets share it whatever their ``seed``;
* a phrase is signed by holding each character's shape for a random number of frames (the speed
  varies per participant, per sequence and per character) with eased transitions between shapes,
  a small bounce between repeated letters, a sideways drift of the hand and a slow wobble;
* per-sequence rotation / scale / shift of the whole body, per-frame jitter;
* ~25 % left-handed participants (mirrored shape in the ``left_hand`` columns), a non-dominant hand
  that is NaN in most frames, 5-30 % of frames with the dominant hand missing (often in runs);
* a face mesh (with a plausible, mouthing lip contour) and a pose skeleton whose wrist follows the
  signing hand, present in every frame;
* phone numbers, street addresses, URLs and names as phrases (1..31 characters, mean ~18);
* deterministic edge cases: a 1-frame sequence, a ~800-frame sequence and a few > 384 frames.

That plain data is easy to read. ``difficulty`` (:mod:`aslfs_pl.data.difficulty`) adds, factor by
factor, what makes the real recordings hard: signer styles, look-alike letters, co-articulation,
skipped and double letters, tracking losses, handedness swaps, noise, camera range, wrong labels.

Everything is deterministic under ``seed``: the same arguments write the same files.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aslfs_pl.data import difficulty as hard
from aslfs_pl.data.difficulty import Difficulty, SignerStyle, factor_rng
from aslfs_pl.data.landmarks import LIPS, PARTS, all_columns
from aslfs_pl.progress import bar
from aslfs_pl.vocab import CHAR_TO_INDEX, CHARACTERS, NUM_CHARACTERS

log = logging.getLogger(__name__)

#: Seed of the character shape alphabet: independent of the dataset seed on purpose.
SHAPE_SEED: int = 12345
#: Longest phrase (Kaggle's maximum).
MAX_PHRASE_LEN: int = 31
#: Landmarks per frame (468 face + 21 left hand + 33 pose + 21 right hand).
NUM_LANDMARKS: int = sum(PARTS.values())  # 543
#: First landmark of each part in Kaggle's per-axis order.
FACE0, LEFT0, POSE0, RIGHT0 = 0, 468, 489, 522

_CSV_COLUMNS = ("path", "file_id", "sequence_id", "participant_id", "phrase")
_AVERAGE_STYLE = hard.average_style(NUM_CHARACTERS)
PLAIN = Difficulty()
_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"  # typos in wrong labels

# --------------------------------------------------------------------------------------------
# Hand model. Hand-local axes: u = image x (right), v = up (image -y), w = towards the camera.
# A right hand, palm facing the camera, fingers up: the thumb is on the +u side.
# MediaPipe hand points: 0 wrist, 1-4 thumb, 5-8 index, 9-12 middle, 13-16 ring, 17-20 pinky.
# --------------------------------------------------------------------------------------------
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


def _rotation(roll: float, yaw: float, pitch: float) -> np.ndarray:
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
def _alphabet() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixed shape alphabet.

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
        rot = _rotation(roll, rng.normal(0.0, 0.35), rng.normal(0.0, 0.3))
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
        np.full((4, 3), 0.35), np.zeros(4), np.array([0.7, 0.3, 0.1]), _rotation(0.0, 0.0, 0.0)
    )
    mouth = rng.uniform(0.0, 1.0, NUM_CHARACTERS)
    return templates, neutral, mouth


def _templates(lookalikes: bool) -> np.ndarray:
    """The 59 hand-local character shapes, with look-alike families pulled together if asked."""
    templates = _alphabet()[0]
    return hard.lookalike_templates(templates) if lookalikes else templates


def character_templates() -> np.ndarray:
    """The 59 character hand shapes as a right hand would show them in image axes.

    Index ``i`` is the shape of ``vocab.CHARACTERS[i]``. Axes are (x right, y down, z), the wrist
    is at the origin and the palm length is ~1; a left-handed signer shows the x-mirrored shape.
    Compare frames with :func:`normalize_hand` applied to both.

    Returns:
        (59, 21, 3) float64 array.
    """
    templates, _, _ = _alphabet()
    return templates * np.array([1.0, -1.0, -1.0])


# --------------------------------------------------------------------------------------------
# Face and pose templates (image coordinates of an upright signer centred at x = 0.5).
# --------------------------------------------------------------------------------------------
_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
_OUTER_LOWER = (146, 91, 181, 84, 17, 314, 405, 321, 375)
_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
_INNER_LOWER = (95, 88, 178, 87, 14, 317, 402, 318, 324)


@lru_cache(maxsize=1)
def _face_template() -> tuple[np.ndarray, np.ndarray]:
    """Canonical face mesh and the per-point y displacement of an open mouth.

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


# MediaPipe pose: 0 nose, 1-3 left eye, 4-6 right eye, 7/8 ears, 9/10 mouth, 11/12 shoulders,
# 13/14 elbows, 15/16 wrists, 17-22 pinky/index/thumb, 23/24 hips, 25-32 legs. "left" is the
# signer's left, i.e. image right (larger x).
_POSE = np.array(
    [
        [0.50, 0.30, -1.10], [0.52, 0.26, -1.05], [0.53, 0.26, -1.05], [0.545, 0.26, -1.05],
        [0.48, 0.26, -1.05], [0.47, 0.26, -1.05], [0.455, 0.26, -1.05], [0.58, 0.28, -0.75],
        [0.42, 0.28, -0.75], [0.52, 0.345, -0.98], [0.48, 0.345, -0.98], [0.66, 0.55, -0.50],
        [0.34, 0.55, -0.50], [0.72, 0.80, -0.40], [0.28, 0.80, -0.40], [0.72, 1.02, -0.50],
        [0.28, 1.02, -0.50], [0.73, 1.06, -0.55], [0.27, 1.06, -0.55], [0.72, 1.07, -0.55],
        [0.28, 1.07, -0.55], [0.71, 1.05, -0.52], [0.29, 1.05, -0.52], [0.62, 1.12, 0.00],
        [0.38, 1.12, 0.00], [0.63, 1.60, 0.10], [0.37, 1.60, 0.10], [0.63, 2.05, 0.50],
        [0.37, 2.05, 0.50], [0.63, 2.10, 0.52], [0.37, 2.10, 0.52], [0.62, 2.14, 0.30],
        [0.38, 2.14, 0.30],
    ]
)  # (33, 3)  # fmt: skip
_HEAD_POSE = np.arange(11)


# --------------------------------------------------------------------------------------------
# Phrases.
# --------------------------------------------------------------------------------------------
def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST = _words(
    "maria james john mary robert linda michael sarah david karen william nancy carlos ana "
    "jose lucia wei mei hiroshi yuki ahmed fatima olga ivan pierre claire hans greta raj priya "
    "kwame amara liam emma noah olivia ethan ava lucas mia diego sofia chen lee kim jin omar "
    "leila sean aoife jack grace tom zoe max ella ben lily sam ruby"
)
_LAST = _words(
    "gonzalez smith johnson williams brown jones garcia miller davis rodriguez martinez "
    "hernandez lopez wilson anderson thomas taylor moore jackson martin thompson white harris "
    "clark lewis robinson walker young allen king wright scott torres nguyen hill flores green "
    "adams nelson baker hall rivera campbell mitchell carter roberts patel kumar singh wang "
    "zhang tanaka sato muller schmidt rossi dubois kowalski novak ivanova cohen murphy kelly"
)
_STREET = _words(
    "olive main oak pine maple cedar elm park lake hill sunset river spring highland valley "
    "church washington lincoln jefferson madison franklin jackson willow cherry walnut birch "
    "meadow forest ridge canyon harbor bay ocean mesa desert prairie summit orchard mill "
    "creekhouse kuhaylah juniper magnolia sycamore aspen laurel hawthorne chestnut poplar"
)
_SUFFIX = _words(
    "street st avenue ave road rd lane ln drive dr court ct boulevard blvd way place pl "
    "terrace circle trail parkway pkwy highway hwy"
)
_DIRS = _words("north south east west n s e w ne nw se sw")
_WORDS = _words(
    "sunny days blue sky green tech cloud data shop store news blog home world city best "
    "free fast smart web net pixel code apps games music photo travel food health sport "
    "book art design studio media market maps mail live open star moon sun fire water "
    "stone wood bright happy little big red gold silver north coast"
)
_TLDS = _words("com org net edu io co gov info us biz me tv uk ca de")
_PATHS = _words("blog about contact home index login search shop news help faq docs img user")
_SENTENCE = _words(
    "the a an of to in is it you that he was for on are as with his they i at be this have "
    "from or one had by word but not what all were we when your can said there use each "
    "which she do how their if will up other about out many then them these so some her "
    "would make like him into time has look two more write go see number no way could people "
    "my than first water been call who oil its now find long down day did get come made may "
    "part quick brown fox jumps over lazy dog coming sound bites killer"
)


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, n))


def _pick(rng: np.random.Generator, words: tuple[str, ...] | str) -> str:
    return words[int(rng.integers(len(words)))]


def _phone(rng: np.random.Generator) -> str:
    a = str(rng.integers(2, 10)) + _digits(rng, 2)
    b = str(rng.integers(2, 10)) + _digits(rng, 2)
    c = _digits(rng, 4)
    k = int(rng.integers(12))
    if k == 0:
        return f"{a}-{b}-{c}"
    if k == 1:
        return f"{a} {b} {c}"
    if k == 2:
        return f"({a}) {b}-{c}"
    if k == 3:
        return f"{a}.{b}.{c}"
    if k == 4:
        return f"+1-{a}-{b}-{c}"
    if k == 5:
        return f"+{rng.integers(2, 99)} {_digits(rng, 2)} {_digits(rng, 4)} {_digits(rng, 4)}"
    if k == 6:
        return f"+{rng.integers(2, 99)}-{_digits(rng, 3)}-{_digits(rng, 3)}-{_digits(rng, 2)}"
    if k == 7:
        return f"1-800-{_pick(rng, _WORDS)}"
    if k == 8:
        return f"{a}-{b}-{c} ext. {_digits(rng, int(rng.integers(2, 5)))}"
    if k == 9:
        return f"*{rng.integers(60, 80)} {a} {b} {c}"
    if k == 10:
        return f"{a}{b}{c}"
    return f"{a}-{b}-{c};ext={_digits(rng, 3)}#"


def _address(rng: np.random.Generator) -> str:
    num = str(rng.integers(1, 10 ** int(rng.integers(1, 6))))
    street, suffix = _pick(rng, _STREET), _pick(rng, _SUFFIX)
    k = int(rng.integers(11))
    if k <= 2:
        return f"{num} {_pick(rng, _DIRS)} {street} {suffix}"
    if k <= 4:
        return f"{num} {street} {suffix}"
    if k == 5:
        return f"{num} {street} {suffix}, apt {rng.integers(1, 40)}"
    if k == 6:
        return f"{num} {street} {suffix} #{rng.integers(1, 999)}"
    if k == 7:
        return f"po box {_digits(rng, int(rng.integers(2, 5)))}, {_pick(rng, _STREET)}"
    if k == 8:
        return f"{street} & {_pick(rng, _STREET)} {suffix}"
    if k == 9:
        return f"{num} {street} {suffix}, {_pick(rng, _STREET)}ville"
    return f"{num} {street}"


def _url(rng: np.random.Generator) -> str:
    w1, w2, tld = _pick(rng, _WORDS), _pick(rng, _WORDS), _pick(rng, _TLDS)
    k = int(rng.integers(14))
    if k <= 1:
        return f"www.{w1}-{w2}.{tld}/{_pick(rng, _PATHS)}"
    if k == 2:
        return f"https://{w1}.{tld}"
    if k == 3:
        return f"http://{w1}{w2}.{tld}/~{_pick(rng, _FIRST)}"
    if k <= 5:
        return f"{_pick(rng, _FIRST)}{_digits(rng, int(rng.integers(0, 3)))}@{w1}.{tld}"
    if k == 6:
        return f"{w1}.{tld}/{_pick(rng, _PATHS)}?id={_digits(rng, 3)}"
    if k == 7:
        return f"{w1}.{tld}/search?q={w2}&p={rng.integers(1, 9)}"
    if k == 8:
        return f"ftp://{w1}.{tld}/{w2}_{_pick(rng, _PATHS)}"
    if k == 9:
        return f"{w1}{w2}.{tld}"
    if k == 10:
        return f"www.{w1}.{tld}/{w2}%20{_pick(rng, _PATHS)}"
    if k == 11:
        return f"{w1}.{tld}/{w2}!/$5/*"
    if k == 12:
        return f"{w1}.{tld}:{rng.integers(80, 90)}/({w2})[{rng.integers(0, 9)}"
    return f"www.{w1}.{tld}/{w2}/'{_pick(rng, _PATHS)}'"


def _name(rng: np.random.Generator) -> str:
    first, last = _pick(rng, _FIRST), _pick(rng, _LAST)
    k = int(rng.integers(10))
    if k <= 2:
        return f"{first} {last}"
    if k == 3:
        return f"{first} {_pick(rng, _FIRST)} {last}"
    if k == 9:
        return first if rng.random() < 0.5 else last
    if k == 4:
        return f"{first} {_pick(rng, 'abcdefghijklmnopqrstuvwxyz')}. {last}"
    if k == 5:
        return f"{last}, {first}"
    if k == 6:
        return f"dr. {first} {last}"
    if k == 7:
        return f"{first} o'{last}"
    return f"{first}-{_pick(rng, _FIRST)} {last}"


def _sentence(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 7))
    return " ".join(_pick(rng, _SENTENCE) for _ in range(n))


_KINDS: tuple[Callable[[np.random.Generator], str], ...] = (_phone, _address, _url, _name)
_KIND_P = np.array([0.22, 0.33, 0.33, 0.12])


def random_phrase(rng: np.random.Generator, supplemental: bool = False) -> str:
    """A random phrase: phone number, street address, URL / e-mail or name (or a sentence).

    Args:
        rng: random generator.
        supplemental: draw the sentence-like phrases of the supplemental set instead.

    Returns:
        A lowercase phrase of 1..31 vocabulary characters.
    """
    for _ in range(100):
        if supplemental:
            phrase = _sentence(rng)
        else:
            phrase = _KINDS[int(rng.choice(len(_KINDS), p=_KIND_P))](rng)
        if 1 <= len(phrase) <= MAX_PHRASE_LEN:
            break
    else:  # pragma: no cover - the generators above fit within a few draws
        phrase = phrase[:MAX_PHRASE_LEN].strip() or "a"
    assert all(c in CHAR_TO_INDEX for c in phrase), phrase
    return phrase


# --------------------------------------------------------------------------------------------
# Participants and sequences.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Participant:
    """A synthetic signer: handedness, body placement and a personal signing style."""

    participant_id: int
    left_handed: bool
    speed: float
    """Multiplier of the hold lengths (> 1 signs slower)."""
    hand_size: float
    finger_scale: np.ndarray
    """(21,) scale of each point's offset from the wrist (finger lengths)."""
    shape_offset: np.ndarray
    """(21, 3) personal shape offset in hand-local units."""
    roll_bias: float
    body_shift: np.ndarray
    """(2,) x, y shift of the body in image coordinates."""
    body_scale: float
    weight: float
    """Relative number of sequences."""
    style: SignerStyle | None = None
    """Personal signing style (the ``signers`` difficulty factor), else None."""


def make_participants(
    rng: np.random.Generator,
    num: int,
    left_fraction: float,
    style_rng: np.random.Generator | None = None,
) -> list[Participant]:
    """Draw ``num`` participants; ``round(num * left_fraction)`` of them are left-handed.

    At least one signer of each hand exists when ``num >= 2`` and ``0 < left_fraction < 1``.
    With ``style_rng`` each participant also gets a personal :class:`SignerStyle` (its hand size
    replaces the plain one).
    """
    n_left = int(round(num * left_fraction))
    if num >= 2 and 0.0 < left_fraction < 1.0:
        n_left = min(max(n_left, 1), num - 1)
    left = np.zeros(num, dtype=bool)
    left[rng.permutation(num)[:n_left]] = True
    ids = np.sort(rng.choice(np.arange(1, 300), size=num, replace=False))
    weights = rng.uniform(0.6, 1.4, num)
    for mask, share in ((left, left_fraction), (~left, 1.0 - left_fraction)):
        if mask.any():  # each hand's group gets its share of the sequences
            weights[mask] *= share / weights[mask].sum()
    out = []
    for i in range(num):
        finger = np.ones(21)
        for f in range(5):
            finger[1 + 4 * f : 5 + 4 * f] = rng.uniform(0.92, 1.08)
        speed = float(rng.uniform(0.8, 1.25))
        hand_size = float(rng.uniform(0.9, 1.1))
        style = None if style_rng is None else hard.draw_style(style_rng, NUM_CHARACTERS)
        out.append(
            Participant(
                participant_id=int(ids[i]),
                left_handed=bool(left[i]),
                speed=speed,
                hand_size=hand_size if style is None else style.hand_size,
                finger_scale=finger,
                shape_offset=rng.normal(0.0, 0.03, (21, 3)),
                roll_bias=float(rng.normal(0.0, 0.06)),
                body_shift=rng.normal(0.0, 0.03, 2),
                body_scale=float(rng.uniform(0.9, 1.1)),
                weight=float(weights[i]),
                style=style,
            )
        )
    return out


@dataclass
class SyntheticSequence:
    """One generated recording."""

    phrase: str
    columns: np.ndarray
    """(3, 543, T) float32: axis, landmark (Kaggle's order: face, left hand, pose, right hand),
    frame. ``columns.reshape(1629, T)`` are the parquet columns in ``all_columns()`` order."""
    char_at_frame: np.ndarray
    """(T,) int: index into ``phrase`` of the character held at each frame, -1 in transitions."""
    left_handed: bool

    @property
    def num_frames(self) -> int:
        return self.columns.shape[-1]

    @property
    def landmarks(self) -> np.ndarray:
        """(T, 543, 3) float32 view of :attr:`columns`."""
        return self.columns.transpose(2, 1, 0)


def _smooth_noise(rng: np.random.Generator, t: np.ndarray, amp: float, dims: int) -> np.ndarray:
    """A slow random wobble (sum of two sinusoids per dimension); (T,) -> (T, dims)."""
    out = np.zeros((len(t), dims))
    for _ in range(2):
        period = rng.uniform(25.0, 90.0, dims)
        phase = rng.uniform(0.0, 2 * np.pi, dims)
        out += amp * np.sin(2 * np.pi * t[:, None] / period + phase)
    return out / 2


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed block of standard-normal float32 noise, sliced for cheap face jitter; (2**22,)."""
    return np.random.default_rng(SHAPE_SEED + 2).standard_normal(1 << 22, dtype=np.float32)


def _bank_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: np.float32) -> np.ndarray:
    """Gaussian noise of ``shape`` and scale ``sigma`` from a random slice of the noise bank."""
    bank = _noise_bank()
    need = int(np.prod(shape))
    if need > len(bank):
        return rng.standard_normal(shape, dtype=np.float32) * sigma
    start = int(rng.integers(0, len(bank) - need + 1))
    return bank[start : start + need].reshape(shape) * sigma


def _runs_mask(
    rng: np.random.Generator, n: int, fraction: float, run_lo: int, run_hi: int
) -> np.ndarray:
    """Boolean (n,) mask covering ~``fraction`` of positions with runs of run_lo..run_hi."""
    mask = np.zeros(n, dtype=bool)
    target = int(round(fraction * n))
    guard = 0
    while mask.sum() < target and guard < 10 * n + 10:
        start = int(rng.integers(n))
        length = 1 if rng.random() < 0.4 else int(rng.integers(run_lo, run_hi + 1))
        mask[start : start + min(length, target - int(mask.sum()))] = True
        guard += 1
    return mask


def _split_frames(weights: np.ndarray, total: int, minimum: int = 1) -> np.ndarray:
    """Integers >= ``minimum`` proportional to ``weights`` summing to ``total`` (if possible)."""
    total = max(total, minimum * len(weights))
    raw = minimum + weights / weights.sum() * (total - minimum * len(weights))
    out = np.floor(raw).astype(int)
    rest = total - out.sum()
    if rest > 0:
        out[np.argsort(-(raw - out), kind="stable")[:rest]] += 1
    return out


def synthesize_sequence(
    phrase: str,
    participant: Participant,
    rng: np.random.Generator,
    *,
    min_frames_per_char: int = 2,
    max_frames_per_char: int = 9,
    target_frames: int | None = None,
    single_frame: bool = False,
    noise_scale: float = 1.0,
    drop_fraction: tuple[float, float] = (0.05, 0.30),
    non_dominant_fraction: float = 0.10,
    difficulty: Difficulty = PLAIN,
    key: tuple[int, ...] = (),
) -> SyntheticSequence:
    """Render one phrase signed by ``participant``.

    Args:
        phrase: text to sign (vocabulary characters, non-empty).
        participant: the signer.
        rng: random generator of this sequence.
        min_frames_per_char: fewest hold frames per character before the speed scaling.
        max_frames_per_char: most hold frames per character before the speed scaling.
        target_frames: if given, stretch holds and transitions to exactly this many frames.
        single_frame: one frame per character, no transitions, no lead-in/out, no drops.
        noise_scale: multiplier of the jitter noise.
        drop_fraction: range of the fraction of frames whose dominant hand is missing (NaN).
        non_dominant_fraction: mean fraction of frames showing the resting non-dominant hand.
        difficulty: the difficulty factors that are on.
        key: identifies this sequence in the factors' random streams (:func:`factor_rng`).

    Returns:
        The rendered :class:`SyntheticSequence`.
    """
    _, neutral, mouth_tab = _alphabet()
    d = difficulty
    templates = _templates(d.lookalikes)
    style = participant.style or _AVERAGE_STYLE
    idx = np.array([CHAR_TO_INDEX[c] for c in phrase])  # (n,)
    n = len(idx)
    if n == 0:
        raise ValueError("empty phrase")

    # ---- timing: holds, transitions, lead-in / lead-out --------------------------------------
    repeat = idx[1:] == idx[:-1]  # (n-1,)
    bounce = repeat.copy()  # doubles shown by a bounce (else by a longer hold only)
    skipped = np.zeros(n, dtype=bool)
    if single_frame:
        holds, trans, lead, trail = np.ones(n, int), np.zeros(n - 1, int), 0, 0
    else:
        rate = participant.speed
        if participant.style is not None:  # the signer's own rate, in frames per letter
            rate = (
                participant.style.frames_per_letter
                * 2
                / (min_frames_per_char + max_frames_per_char)
            )
        speed = rate * math.exp(rng.normal(0.0, 0.2))
        base = rng.integers(min_frames_per_char, max_frames_per_char + 1, n)
        holds = np.maximum(1, np.round(base * speed * rng.uniform(0.8, 1.2, n))).astype(int)
        trans = rng.integers(1, 4, n - 1)
        trans[repeat] = np.maximum(trans[repeat], 2)
        lead, trail = int(rng.integers(0, 9)), int(rng.integers(0, 9))
        if d.coarticulation:
            trans = hard.transition_lengths(factor_rng(key, "coarticulation"), holds)
        if d.doubles:
            bounce &= factor_rng(key, "doubles").random(n - 1) >= hard.HOLD_ONLY_DOUBLE
        if target_frames is not None:
            both = _split_frames(
                np.concatenate([holds, trans]).astype(float), target_frames - lead - trail
            )
            holds, trans = both[:n], np.maximum(both[n:], 1)
        if d.skips:
            skipped = hard.skipped_letters(factor_rng(key, "skips"), idx, style.skip_rate)
            holds[skipped] = 0
    rest = n  # key index of the neutral pose
    seg_a, seg_b, seg_alpha, seg_label, seg_bump = [], [], [], [], []

    def add(a: int, b: int, length: int, label: int, bump: bool) -> None:
        if length <= 0:
            return
        lin = np.arange(1, length + 1) / (length + 1) if a != b else np.zeros(length)
        seg_a.append(np.full(length, a))
        seg_b.append(np.full(length, b))
        seg_alpha.append(lin * lin * (3 - 2 * lin))  # smoothstep
        seg_label.append(np.full(length, label))
        seg_bump.append(np.sin(np.pi * np.arange(1, length + 1) / (length + 1)) * bump)

    add(rest, 0, lead, -1, False)
    for k in range(n):
        add(k, k, int(holds[k]), k, False)
        if k < n - 1:
            # A repeated letter keeps its shape: the hand relaxes and bounces between the holds.
            add(k, k if repeat[k] else k + 1, int(trans[k]), -1, bool(bounce[k]))
    add(n - 1, rest, trail, -1, False)
    a = np.concatenate(seg_a)  # (T,)
    b = np.concatenate(seg_b)
    alpha = np.concatenate(seg_alpha)[:, None]  # (T, 1)
    label = np.concatenate(seg_label)
    bump = np.concatenate(seg_bump)  # (T,)
    T = len(a)
    t = np.arange(T, dtype=float)

    # ---- dominant hand shape in hand-local units ---------------------------------------------
    style_rot = _rotation(participant.roll_bias + rng.normal(0.0, 0.04), 0.0, 0.0)
    keys = np.concatenate([templates[idx], neutral[None]], 0)  # (n+1, 21, 3)
    keys = keys * participant.finger_scale[None, :, None] + participant.shape_offset
    if participant.style is not None:  # the signer's own form of each letter
        keys[:n] += participant.style.letter_forms[idx]
    keys = keys + rng.normal(0.0, 0.015, keys.shape)
    if d.coarticulation or d.skips:
        pull = style.coarticulation if d.coarticulation else 0.0
        keys[:n] = hard.coarticulate(keys[:n], pull, skipped)
    keys = keys @ style_rot.T
    relax = 0.35 * bump[:, None, None]
    shape = (1 - alpha[..., None]) * keys[a] + alpha[..., None] * keys[b]  # (T, 21, 3)
    shape = (1 - relax) * shape + relax * neutral
    side = -1.0 if participant.left_handed else 1.0  # +1: signer's right hand (image left)
    shape[..., 0] *= side  # mirror a left hand

    # ---- dominant hand position (image coordinates, before the global transform) ------------
    hand_size = 0.09 * participant.hand_size  # image units per hand-local unit
    drift_dir = -side * rng.uniform(0.6, 1.0)  # mostly away from the body midline
    step = rng.uniform(0.002, 0.006)
    ks = np.arange(n)
    span = 10 + int(rng.integers(0, 8))
    tri = np.abs(((ks + span) % (2 * span)) - span) - span / 2  # bounded triangle wave
    key_pos = np.zeros((n + 1, 2))
    key_pos[:n, 0] = drift_dir * step * tri + rng.normal(0.0, 0.004, n)
    key_pos[:n, 1] = rng.normal(0.0, 0.004, n) - 0.002 * np.sin(ks)
    key_pos[n] = [0.05 * side, 0.3]  # the hand enters from / leaves towards the bottom
    pos = (1 - alpha) * key_pos[a] + alpha * key_pos[b]  # (T, 2)
    pos[:, 0] += bump * 0.012 * drift_dir
    pos[:, 1] += bump * 0.02
    pos += _smooth_noise(rng, t, 0.006, 2)
    wrist = np.array([0.5 - 0.1 * side, 0.62]) + pos  # (T, 2)
    hand = np.empty((T, 21, 3))
    hand[..., 0] = wrist[:, None, 0] + hand_size * shape[..., 0]
    hand[..., 1] = wrist[:, None, 1] - hand_size * shape[..., 1]
    hand[..., 2] = -hand_size * shape[..., 2]
    sigma = noise_scale * rng.uniform(0.001, 0.0025)
    hand += rng.normal(0.0, 0.001 * noise_scale, (T, 1, 3))  # per-frame shake
    hand += rng.normal(0.0, sigma, hand.shape)
    noise_rng = factor_rng(key, "noise") if d.noise else None
    if noise_rng is not None:
        hand = hard.add_noise(noise_rng, hand, hand_size)

    # ---- non-dominant hand at rest -----------------------------------------------------------
    rest_wrist = np.array([0.5 + 0.22 * side, 0.98]) + _smooth_noise(rng, t, 0.004, 2)  # (T, 2)
    rest_shape = neutral @ _rotation(np.pi + rng.normal(0.0, 0.2), 0.0, 0.0).T  # (21, 3)
    rest_shape = rest_shape * np.array([-side, 1.0, 1.0])
    other = np.empty((T, 21, 3))
    other[..., 0] = rest_wrist[:, None, 0] + hand_size * rest_shape[:, 0]
    other[..., 1] = rest_wrist[:, None, 1] - hand_size * rest_shape[:, 1]
    other[..., 2] = -hand_size * rest_shape[:, 2]
    other += rng.normal(0.0, sigma, other.shape)
    if noise_rng is not None:
        other = hard.add_noise(noise_rng, other, hand_size)

    # ---- pose: head follows the face, the dominant arm follows the hand ----------------------
    head = _smooth_noise(rng, t, 0.005, 2)  # (T, 2)
    pose = np.repeat(_POSE[None], T, 0)  # (T, 33, 3)
    pose[:, _HEAD_POSE, :2] += head[:, None, :]
    pose[:, 11:, :2] += _smooth_noise(rng, t, 0.003, 2)[:, None, :]
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

    # ---- global similarity transform of the whole body ---------------------------------------
    theta = np.deg2rad(rng.uniform(-15.0, 15.0))
    scale = float(np.clip(participant.body_scale * rng.uniform(0.85, 1.15), 0.8, 1.2))
    shift = participant.body_shift + rng.uniform(-0.08, 0.08, 2)
    scale_xy = np.array([scale, scale])
    if d.camera:
        theta, scale_xy, extra_shift = hard.camera(factor_rng(key, "camera"), theta)
        scale, shift = float(scale_xy.mean()), shift + extra_shift
    lin = scale_xy[:, None] * np.array(
        [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]
    )  # (2, 2)
    centre = np.array([0.5, 0.5])

    def place(pts: np.ndarray) -> np.ndarray:
        """Apply the transform to (..., 3) points."""
        out = np.empty_like(pts)
        out[..., :2] = (pts[..., :2] - centre) @ lin.T + centre + shift
        out[..., 2] = pts[..., 2] * scale
        return out

    # ---- face: head motion, mouthing (float32, transformed template + offsets) ---------------
    face_tpl, mouth_dy = _face_template()
    key_mouth = np.concatenate([mouth_tab[idx], [0.1]])
    mouth = (1 - alpha[:, 0]) * key_mouth[a] + alpha[:, 0] * key_mouth[b]
    mouth = np.clip(mouth + rng.normal(0.0, 0.1, T), 0.0, 1.2)  # (T,)
    cols = np.empty((3, NUM_LANDMARKS, T), np.float32)  # axis-major, like Kaggle's columns
    face = cols[:, FACE0:LEFT0]  # (3, 468, T) view
    face[:] = place(face_tpl).T[:, :, None]
    face[:2] += (head @ lin.T).T[:, None, :].astype(np.float32)
    mouth_xy = np.stack([np.zeros(468), mouth_dy], -1) @ lin.T  # (468, 2)
    face[:2] += mouth_xy.T[:, :, None].astype(np.float32) * mouth.astype(np.float32)
    face += _bank_noise(rng, face.shape, np.float32(0.0008 * noise_scale * scale))

    # ---- assemble, missing hands -------------------------------------------------------------
    cols[:, POSE0:RIGHT0] = place(pose).transpose(2, 1, 0)
    dom_sl = slice(RIGHT0, NUM_LANDMARKS) if side > 0 else slice(LEFT0, POSE0)
    non_sl = slice(LEFT0, POSE0) if side > 0 else slice(RIGHT0, NUM_LANDMARKS)
    cols[:, dom_sl] = place(hand).transpose(2, 1, 0)
    cols[:, non_sl] = place(other).transpose(2, 1, 0)
    drop = np.zeros(T, dtype=bool)
    if not single_frame and T > 2:
        drop = _runs_mask(rng, T, rng.uniform(*drop_fraction), 2, 6)
        if d.tracking:
            lost = factor_rng(key, "tracking")
            drop |= _runs_mask(lost, T, lost.uniform(*hard.LOST_FRACTION), *hard.LOST_BURST)
        cols[:, dom_sl, drop] = np.nan
    shown = _runs_mask(rng, T, rng.uniform(0.0, 2 * non_dominant_fraction), 3, 15)
    cols[:, non_sl, ~shown] = np.nan
    if d.hand_swaps and not single_frame and T > 2:
        swaps = factor_rng(key, "hand_swaps")
        if swaps.random() < hard.SWAP_SEQUENCES:
            frac = swaps.uniform(*hard.SWAP_FRACTION)
            swap = _runs_mask(swaps, T, frac, *hard.SWAP_BURST) & ~drop
            cols[:, non_sl, swap] = cols[:, dom_sl, swap]
            cols[:, dom_sl, swap] = np.nan
    return SyntheticSequence(
        phrase=phrase,
        columns=cols,
        char_at_frame=label,
        left_handed=participant.left_handed,
    )


# --------------------------------------------------------------------------------------------
# Writing.
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _schema() -> pa.Schema:
    """Kaggle's schema (sequence_id, frame, 1,629 float32) with pandas index metadata."""
    import pandas as pd

    cols = all_columns()
    df = pd.DataFrame(np.zeros((1, len(cols)), np.float32), columns=cols)
    df.insert(0, "frame", np.zeros(1, np.int16))
    df.index = pd.Index(np.zeros(1, np.int64), name="sequence_id")
    meta = pa.Schema.from_pandas(df, preserve_index=True).metadata
    fields = [pa.field("sequence_id", pa.int64()), pa.field("frame", pa.int16())]
    fields += [pa.field(c, pa.float32()) for c in cols]
    return pa.schema(fields, metadata=meta)


def _write_parquet(path: Path, seqs: list[tuple[int, SyntheticSequence]]) -> int:
    """Write sequences (``(sequence_id, sequence)``) as one Kaggle landmark file; returns rows.

    Empties ``seqs`` once their frames are copied, so their memory is freed while encoding.
    """
    lengths = [s.num_frames for _, s in seqs]
    rows = int(sum(lengths))
    ncol = 3 * NUM_LANDMARKS
    data = np.empty((ncol, rows), np.float32)  # (1629, N) column-major, one array per column
    seq_col = np.empty(rows, np.int64)
    frame_col = np.empty(rows, np.int16)
    r = 0
    for (sid, s), T in zip(seqs, lengths, strict=True):
        data[:, r : r + T] = s.columns.reshape(ncol, T)  # axis-major, as all_columns()
        seq_col[r : r + T] = sid
        frame_col[r : r + T] = np.arange(T)
        r += T
    seqs.clear()
    arrays = [pa.array(seq_col), pa.array(frame_col)] + [pa.array(data[i]) for i in range(ncol)]
    table = pa.Table.from_arrays(arrays, schema=_schema())
    pq.write_table(table, path, use_dictionary=["sequence_id", "frame"], compression="snappy")
    return rows


def _unique_ints(rng: np.random.Generator, n: int, lo: int, hi: int, taken: set[int]) -> list[int]:
    out: list[int] = []
    while len(out) < n:
        for v in rng.integers(lo, hi, n - len(out) + 8).tolist():
            if v not in taken and len(out) < n:
                taken.add(v)
                out.append(v)
    return out


def _write_split(
    out_dir: Path,
    folder: str,
    csv_name: str,
    num: int,
    seed: int,
    split_id: int,
    participants: list[Participant],
    taken_ids: set[int],
    sequences_per_file: int,
    edge_cases: bool,
    difficulty: Difficulty,
    seq_kwargs: dict,
) -> dict:
    """Generate and write one split (train or supplemental); returns its summary."""
    rng = np.random.default_rng([seed, split_id, 1])
    (out_dir / folder).mkdir(parents=True, exist_ok=True)
    n_files = max(1, math.ceil(num / sequences_per_file)) if num else 0
    file_ids = sorted(_unique_ints(rng, n_files, 1_000_000, 2_147_483_647, taken_ids))
    seq_ids = _unique_ints(rng, num, 1_000_000, 2_147_483_647, taken_ids)
    # Participants: each appears once first (so small sets see both hands), then by weight.
    w = np.array([p.weight for p in participants])
    first = rng.permutation(len(participants))[:num]
    who = np.concatenate([first, rng.choice(len(participants), num - len(first), p=w / w.sum())])
    # Edge cases at fixed (seeded) positions: 1 frame, ~800 frames, three of 420..640 frames.
    special: dict[int, tuple[str, int]] = {}
    if edge_cases and num >= 8:
        pos = rng.choice(num, size=5, replace=False).tolist()
        special[pos[0]] = ("single", 1)
        special[pos[1]] = ("long", int(rng.integers(800, 808)))
        for p in pos[2:]:
            special[p] = ("long", int(rng.integers(420, 641)))

    lengths, phrase_lens, left, rows_csv, files = [], [], 0, [], []
    mislabelled = 0
    # Parquet encoding releases the GIL: write file f in a thread while generating file f + 1.
    pool = ThreadPoolExecutor(max_workers=1)
    pending: Future | None = None
    for f in bar(range(n_files), n_files, f"writing {folder}"):
        chunk = []
        for i in range(f * sequences_per_file, min(num, (f + 1) * sequences_per_file)):
            srng = np.random.default_rng([seed, split_id, 2, i])
            part = participants[int(who[i])]
            kind, frames = special.get(i, ("normal", 0))
            key = (seed, split_id, i)
            kwargs = {"difficulty": difficulty, "key": key, **seq_kwargs}
            if kind == "single":
                phrase = CHARACTERS[int(srng.integers(33, NUM_CHARACTERS - 1))]  # a letter
                seq = synthesize_sequence(phrase, part, srng, single_frame=True, **kwargs)
            else:
                phrase = random_phrase(srng, supplemental=split_id == 1)
                if kind == "long":
                    while len(phrase) < 20:
                        phrase = random_phrase(srng, supplemental=split_id == 1)
                signed = phrase
                if difficulty.label_noise:
                    lrng = factor_rng(key, "label_noise")
                    other = random_phrase(lrng, supplemental=split_id == 1)
                    signed, phrase = hard.mislabel(lrng, phrase, other, _LETTERS)
                    mislabelled += signed != phrase
                seq = synthesize_sequence(
                    signed, part, srng, target_frames=frames or None, **kwargs
                )
            chunk.append((seq_ids[i], seq))
            lengths.append(seq.num_frames)
            phrase_lens.append(len(phrase))
            left += int(part.left_handed)
            rows_csv.append(
                (
                    f"{folder}/{file_ids[f]}.parquet",
                    file_ids[f],
                    seq_ids[i],
                    part.participant_id,
                    phrase,
                )
            )
        path = out_dir / folder / f"{file_ids[f]}.parquet"
        if pending is not None:
            pending.result()
        pending = pool.submit(_write_parquet, path, chunk)
        files.append(str(path.relative_to(out_dir)))
    if pending is not None:
        pending.result()
    pool.shutdown()
    written = {Path(f).name for f in files}
    stale = [p for p in (out_dir / folder).glob("*.parquet") if p.name not in written]
    if stale:
        log.warning(
            "%s holds %d parquet files not listed in %s (from an earlier run?)",
            out_dir / folder, len(stale), csv_name,
        )  # fmt: skip
    with open(out_dir / csv_name, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(_CSV_COLUMNS)
        writer.writerows(rows_csv)
    arr = np.array(lengths) if lengths else np.zeros(1)
    return {
        "num_sequences": num,
        "num_frames": int(np.sum(lengths)) if lengths else 0,
        "files": files,
        "csv": csv_name,
        "mean_frames": float(arr.mean()),
        "median_frames": float(np.median(arr)),
        "min_frames": int(arr.min()),
        "max_frames": int(arr.max()),
        "mean_phrase_len": float(np.mean(phrase_lens)) if phrase_lens else 0.0,
        "left_handed_fraction": left / max(num, 1),
        "mislabelled": mislabelled,
    }


def write_synthetic_dataset(
    out_dir: str | Path,
    num_sequences: int,
    seed: int = 0,
    supplemental_sequences: int = 0,
    sequences_per_file: int = 250,
    min_frames_per_char: int = 2,
    max_frames_per_char: int = 9,
    num_participants: int | None = None,
    left_handed_fraction: float = 0.25,
    drop_fraction: tuple[float, float] = (0.05, 0.30),
    noise_scale: float = 1.0,
    edge_cases: bool = True,
    difficulty: Difficulty | str = "plain",
) -> dict:
    """Write a synthetic dataset in Kaggle's layout under ``out_dir``.

    Writes ``character_to_prediction_index.json``, ``train.csv`` and
    ``train_landmarks/<file_id>.parquet``; with ``supplemental_sequences > 0`` also
    ``supplemental_metadata.csv`` and ``supplemental_landmarks/<file_id>.parquet`` (sentence-like
    phrases, 1.5x the noise, same participants). Deterministic under ``seed``.

    Args:
        out_dir: dataset root (created if needed).
        num_sequences: number of train sequences.
        seed: seed of phrases, participants and sequences (the shape alphabet is fixed).
        supplemental_sequences: number of supplemental sequences (0: none written).
        sequences_per_file: sequences per parquet file.
        min_frames_per_char: fewest hold frames per character before the speed scaling.
        max_frames_per_char: most hold frames per character before the speed scaling.
        num_participants: number of signers (default: 12..18, drawn from ``seed``).
        left_handed_fraction: fraction of left-handed participants.
        drop_fraction: range of the per-sequence fraction of frames without the dominant hand.
        noise_scale: multiplier of the jitter noise.
        edge_cases: with ``num_sequences >= 8``, place a 1-frame sequence, one of 800..807 frames
            and three of 420..640 frames in the train split.
        difficulty: a :class:`Difficulty` or a preset name ("plain", "hard"); see
            :mod:`aslfs_pl.data.difficulty`.

    Returns:
        Summary: ``out_dir``, ``num_participants``, ``train`` and (if written) ``supplemental``
        dicts with counts, frame statistics, phrase length, left-handed fraction and files.
    """
    if num_sequences < 0 or supplemental_sequences < 0:
        raise ValueError("sequence counts must be >= 0")
    if sequences_per_file < 1:
        raise ValueError("sequences_per_file must be >= 1")
    if not 1 <= min_frames_per_char <= max_frames_per_char:
        raise ValueError("need 1 <= min_frames_per_char <= max_frames_per_char")
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "character_to_prediction_index.json", "w", encoding="utf-8") as fh:
        json.dump(CHAR_TO_INDEX, fh)
    if isinstance(difficulty, str):
        difficulty = Difficulty.preset(difficulty)
    prng = np.random.default_rng([seed, 99])
    n_part = int(num_participants or prng.integers(12, 19))
    style_rng = factor_rng((seed,), "signers") if difficulty.signers else None
    participants = make_participants(prng, n_part, left_handed_fraction, style_rng)
    taken: set[int] = set()
    kwargs = {
        "min_frames_per_char": min_frames_per_char,
        "max_frames_per_char": max_frames_per_char,
        "drop_fraction": drop_fraction,
        "noise_scale": noise_scale,
    }
    summary: dict = {
        "out_dir": str(out),
        "num_participants": n_part,
        "difficulty": difficulty.describe(),
    }
    summary["train"] = _write_split(
        out, "train_landmarks", "train.csv", num_sequences, seed, 0, participants, taken,
        sequences_per_file, edge_cases, difficulty, kwargs,
    )  # fmt: skip
    if supplemental_sequences > 0:
        sup_kwargs = {**kwargs, "noise_scale": 1.5 * noise_scale}
        summary["supplemental"] = _write_split(
            out, "supplemental_landmarks", "supplemental_metadata.csv", supplemental_sequences,
            seed, 1, participants, taken, sequences_per_file, False, difficulty, sup_kwargs,
        )  # fmt: skip
    summary["seconds"] = round(time.perf_counter() - start, 2)
    log.info(
        "wrote %d train + %d supplemental synthetic sequences to %s in %.1fs",
        num_sequences, supplemental_sequences, out, summary["seconds"],
    )  # fmt: skip
    return summary
