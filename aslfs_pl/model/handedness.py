"""The left-hander flip (the 2nd place's preprocessing): a sequence whose left hand is seen more
than its right hand is mirrored, so that the network reads every signer as right-handed.

The rule, as the 2nd place coded it: the signing hand is the one with fewer missing values over
the whole sequence (MediaPipe sees the signing hand in most frames, the other hand in few). A
mirrored sequence has x -> 1 - x and every point moved to its mirror partner's columns (the left
hand's to the right hand's, the lips' left corner to the right one, ...;
:meth:`~aslfs_pl.data.landmarks.LandmarkSet.hand_columns`). It runs inside the network, before
the stem, in training and in the TFLite file alike (:class:`LeftHandFlipExport`, ops that lower
with a symbolic frame count).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aslfs_pl.export_ops import ExportForm


class LeftHandFlip(nn.Module):
    """(..., T, C) raw columns -> the same, each sequence whose left hand has fewer missing
    values than its right hand mirrored. ``columns``: ``LandmarkSet.hand_columns()``."""

    def __init__(self, columns: dict[str, list[int]]):
        super().__init__()
        scale = torch.ones(len(columns["mirror"]))
        scale[columns["x"]] = -1.0
        for key, value in (
            ("mirror", torch.tensor(columns["mirror"])),
            ("left", torch.tensor(columns["left_hand"])),
            ("right", torch.tensor(columns["right_hand"])),
            ("scale", scale),  # x -> 1 - x: -1 and 1 on x columns, 1 and 0 elsewhere
            ("offset", (1.0 - scale) / 2),
        ):
            self.register_buffer(key, value, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        seen = (~torch.isnan(x)).to(x.dtype)
        left = seen.index_select(-1, self.left).sum((-1, -2))  # (...,)
        right = seen.index_select(-1, self.right).sum((-1, -2))
        flipped = x.index_select(-1, self.mirror) * self.scale + self.offset
        return torch.where((left > right)[..., None, None], flipped, x)

    def export_form(self) -> LeftHandFlipExport:
        return LeftHandFlipExport(self)


class LeftHandFlipExport(ExportForm):
    """:class:`LeftHandFlip` on the (n, C) rows of one sequence. The hands' columns are as many
    on each side, so their mean seen fraction compares as their counts do."""

    def __init__(self, flip: LeftHandFlip):
        super().__init__()
        for key, value in flip.named_buffers():
            self.put(key, value.to(torch.int32) if key in ("mirror", "left", "right") else value)
        self.covers(flip)

    def forward(self, x: Tensor) -> Tensor:
        columns = x.t()  # (C, n): columns gathered as rows (a gather over a symbolic axis
        seen = (~torch.isnan(columns)).to(torch.float32)  # does not lower)
        left = F.embedding(self.left, seen).mean((0, 1), keepdim=True)  # (1, 1)
        right = F.embedding(self.right, seen).mean((0, 1), keepdim=True)
        flipped = F.embedding(self.mirror, columns).t() * self.scale + self.offset
        return torch.where(left > right, flipped, x)
