"""Kaggle's landmark columns and the subset the model reads.

A Kaggle parquet holds 543 MediaPipe landmarks x 3 axes = 1,629 float32 columns, ordered axis-major
(all x, then all y, then all z); inside an axis the parts are face 0..467, left_hand 0..20,
pose 0..32, right_hand 0..20. Column names look like ``x_face_0`` or ``z_right_hand_7``.

The model reads a subset (:class:`LandmarkSet`). The default keeps what carries fingerspelling:
both hands (42 points), the 40 lip contour points used by most public ASL solutions (mouthing
helps with letters), and 6 upper-body pose points (shoulders, elbows, wrists: where the hands are
relative to the body), with x and y only (MediaPipe's z is a noisy depth estimate; the seed drops
it). That is 88 landmarks x 2 axes = 176 columns. ``selected_columns`` is the one ordered list that
both the data reader and the exported TFLite model (``inference_args.json``) use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PARTS: dict[str, int] = {"face": 468, "left_hand": 21, "pose": 33, "right_hand": 21}
AXES: tuple[str, ...] = ("x", "y", "z")


def all_columns() -> list[str]:
    """The 1,629 landmark column names in Kaggle's order."""
    return [f"{a}_{p}_{i}" for a in AXES for p, n in PARTS.items() for i in range(n)]


#: Lip contour (outer then inner), MediaPipe face-mesh indices.
LIPS: tuple[int, ...] = (
    61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291,
    146, 91, 181, 84, 17, 314, 405, 321, 375,
    78, 191, 80, 81, 82, 13, 312, 311, 310, 415,
    95, 88, 178, 87, 14, 317, 402, 318, 324, 308,
)  # fmt: skip
#: Face-mesh points that swap under a left/right mirror (both directions listed once).
FACE_MIRROR_PAIRS: tuple[tuple[int, int], ...] = (
    (61, 291), (185, 409), (40, 270), (39, 269), (37, 267),
    (146, 375), (91, 321), (181, 405), (84, 314),
    (78, 308), (191, 415), (80, 310), (81, 311), (82, 312),
    (95, 324), (88, 318), (178, 402), (87, 317),
    (1, 1), (4, 4),
)  # fmt: skip
#: Upper-body pose points: shoulders, elbows, wrists.
POSE_UPPER: tuple[int, ...] = (11, 12, 13, 14, 15, 16)


def _mirror_map() -> dict[tuple[str, int], tuple[str, int]]:
    """(part, index) -> (part, index) of the mirrored point; absent = maps to itself."""
    m: dict[tuple[str, int], tuple[str, int]] = {}
    for i in range(21):
        m[("left_hand", i)] = ("right_hand", i)
        m[("right_hand", i)] = ("left_hand", i)
    for a, b in FACE_MIRROR_PAIRS:
        m[("face", a)], m[("face", b)] = ("face", b), ("face", a)
    # Pose: 7..32 come in (odd, even) = (left, right) pairs; 1..6 are the eyes, 9/10 the mouth.
    for a in range(7, 33, 2):
        m[("pose", a)], m[("pose", a + 1)] = ("pose", a + 1), ("pose", a)
    for a, b in ((1, 4), (2, 5), (3, 6), (9, 10)):
        m[("pose", a)], m[("pose", b)] = ("pose", b), ("pose", a)
    return m


@dataclass(frozen=True)
class LandmarkSet:
    """Which landmarks (and axes) the model reads.

    The points are ordered part by part (left hand, right hand, lips, pose); ``selected_columns``
    is axis-major like Kaggle's file (all x columns, then all y).
    """

    left_hand: tuple[int, ...] = tuple(range(21))
    """Left-hand points (0..20)."""
    right_hand: tuple[int, ...] = tuple(range(21))
    """Right-hand points (0..20)."""
    face: tuple[int, ...] = LIPS
    """Face-mesh points (0..467); the default is the 40 lip-contour points."""
    pose: tuple[int, ...] = POSE_UPPER
    """Pose points (0..32); the default is shoulders, elbows, wrists."""
    axes: tuple[str, ...] = ("x", "y")
    """Axes to read, a subset of x, y, z in that order."""
    points: tuple[tuple[str, int], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for part, idx in (
            ("left_hand", self.left_hand),
            ("right_hand", self.right_hand),
            ("face", self.face),
            ("pose", self.pose),
        ):
            bad = [i for i in idx if not 0 <= i < PARTS[part]]
            if bad:
                raise ValueError(f"landmark set: {part} indices {bad} outside 0..{PARTS[part] - 1}")
            if len(set(idx)) != len(idx):
                raise ValueError(f"landmark set: {part} indices repeat: {list(idx)}")
        if (
            not self.axes
            or any(a not in AXES for a in self.axes)
            or list(self.axes) != sorted(self.axes)
        ):
            raise ValueError(
                f"landmark set: axes must be an ordered subset of x, y, z, got {self.axes}"
            )
        pts = (
            [("left_hand", i) for i in self.left_hand]
            + [("right_hand", i) for i in self.right_hand]
            + [("face", i) for i in self.face]
            + [("pose", i) for i in self.pose]
        )
        if not pts:
            raise ValueError("landmark set selects no landmark")
        object.__setattr__(self, "points", tuple(pts))

    @property
    def num_points(self) -> int:
        return len(self.points)

    @property
    def num_axes(self) -> int:
        return len(self.axes)

    @property
    def num_columns(self) -> int:
        return self.num_points * self.num_axes

    @property
    def selected_columns(self) -> list[str]:
        """Ordered column names: input order of the model and of ``inference_args.json``."""
        return [f"{a}_{p}_{i}" for a in self.axes for p, i in self.points]

    def part_slices(self) -> dict[str, list[int]]:
        """Positions (in ``points``) of each part."""
        out: dict[str, list[int]] = {}
        for k, (p, _) in enumerate(self.points):
            out.setdefault(p, []).append(k)
        return out

    def hand_columns(self) -> dict[str, list[int]]:
        """What the left-hander flip reads (:mod:`aslfs_pl.model.handedness`), as column
        positions of ``selected_columns``: ``mirror`` (each column's mirror image, same axis),
        ``x`` (the x axis's columns; empty without x), ``left_hand`` and ``right_hand`` (each
        hand's columns on the first axis)."""
        p, perm, parts = self.num_points, self.mirror_permutation(), self.part_slices()
        return {
            "mirror": [a * p + perm[k] for a in range(self.num_axes) for k in range(p)],
            "x": list(range(p)) if "x" in self.axes else [],
            "left_hand": parts.get("left_hand", []),
            "right_hand": parts.get("right_hand", []),
        }

    def mirror_permutation(self) -> list[int]:
        """For each point, the position of its mirror image (itself if it has none here).

        A mirror whose partner is not selected keeps the point in place: choose symmetric
        subsets (the default is) for a faithful flip.
        """
        where = {pt: k for k, pt in enumerate(self.points)}
        mirror = _mirror_map()
        return [where.get(mirror.get(pt, pt), k) for k, pt in enumerate(self.points)]
