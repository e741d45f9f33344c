"""The exported model against PyTorch, on random inputs at several lengths.

How a row is compared, and whether a token may flip at a near tie, is the decoding's own rule
(:meth:`aslfs_pl.model.decoding.Decoding.parity_row` and ``near_ties``, documented with each
decoding). Tolerances on logits per weight type (:data:`TOLERANCE`): fp32 must read the same
phrase as PyTorch wherever the decoding does not allow near ties; fp16 and int8 may flip a token
only at a near tie (the logits agree within the tolerance up to that row and PyTorch's own margin
between its token and TFLite's is within the tolerance too). An fp16 file is compared with the
network whose weights are rounded as the file stores them (:func:`as_stored`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aslfs_pl import vocab
from aslfs_pl.deploy.runtime import TFLiteRunner
from aslfs_pl.model import decoding as decodings
from aslfs_pl.model.decoding import ParityRow
from aslfs_pl.model.features import fit_length
from aslfs_pl.model.seq2seq import Seq2Seq

# Logit tolerance per weight type. Measured: fp16 moves logits by ~1e-3; int8 by ~0.02 on the
# tests' tiny network and up to 0.3 on the trained quickstart model.
TOLERANCE = {"fp32": 1e-4, "fp16": 5e-2, "int8": 0.5}


@dataclass
class ParityReport:
    """TFLite vs PyTorch at several lengths (rule: see the module doc)."""

    rows: list[ParityRow]
    tolerance: float
    allow_near_ties: bool = False

    def row_ok(self, row: ParityRow) -> bool:
        if row.max_diff > self.tolerance:
            return False
        if row.diverged_at is None:
            return row.same_text
        return self.allow_near_ties and row.margin <= self.tolerance

    @property
    def ok(self) -> bool:
        return all(self.row_ok(row) for row in self.rows)

    @property
    def same_texts(self) -> int:
        return sum(row.same_text for row in self.rows)

    def summary(self) -> str:
        rule = "near-tie flips allowed" if self.allow_near_ties else "texts must be equal"
        lines = [f"parity (tolerance {self.tolerance:g} on logits; {rule}):"]
        for row in self.rows:
            text = (
                "equal"
                if row.same_text
                else (f"DIFFERENT from step {row.diverged_at} (PyTorch margin {row.margin:.3f})")
            )
            flag = "" if self.row_ok(row) else "  <- FAILED"
            lines.append(f"  T={row.frames:5d}: text {text}, max |diff| {row.max_diff:.2e}{flag}")
        lines.append(f"texts equal: {self.same_texts}/{len(self.rows)}")
        lines.append("parity: OK" if self.ok else "parity: FAILED")
        return "\n".join(lines)


def random_input(t: int, columns: int, rng: np.random.Generator) -> np.ndarray:
    """(t, columns) frames with frames where nothing is seen, frames missing a hand, and a few
    values that are not landmark positions (inf, -inf, 1e30: read as missing)."""
    x = rng.uniform(0.2, 0.8, (t, columns)).astype(np.float32)
    x[rng.random(t) < 0.1] = np.nan
    x[rng.random(t) < 0.3, : columns // 4] = np.nan
    for value in (np.inf, -np.inf, 1e30):
        x[rng.random(t) < 0.03, rng.integers(columns)] = value
    return x


def as_stored(net: Seq2Seq, weights: str) -> Seq2Seq:
    """The network PyTorch compares the file with: for an fp16 file, a copy whose parameters
    are rounded to half precision as the file stores them, so that the comparison sees the
    file's weights (a random network's beam search holds dozens of near ties, and the rounding
    alone flips one: the 4th-place config at 1000 frames read another phrase in the file than
    the fp32 network, the same phrase as this copy). fp32 and int8 (whose per-channel scales
    are the converter's): the network itself."""
    if weights != "fp16":
        return net
    rounded = copy.deepcopy(net)
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.half().float())
    return rounded


def falls_back(net: Seq2Seq, decoding: str, padded: torch.Tensor) -> bool:
    """Whether PyTorch replaces this input's read-out by the fallback phrase
    (:mod:`aslfs_pl.model.fallback`)."""
    if net.fallback is None or not decodings.get(decoding).phrase_rows:
        return False
    return bool(net.hopeless(decodings.Encoded(net, padded))[0])


def fallback_row(net: Seq2Seq, frames: int, out: np.ndarray) -> ParityRow:
    """The TFLite file's rows for an input PyTorch finds hopeless: they must spell the fallback
    phrase (one-hot rows: no logits to compare)."""
    same = vocab.decode_kaggle(np.argmax(out, 1)) == net.fallback.phrase
    return ParityRow(frames, same, 0.0, None if same else 0, 0.0)


def parity_report(
    net: Seq2Seq,
    model_path: str | Path,
    weights: str = "fp16",
    lengths: tuple[int, ...] | None = None,
    seed: int = 0,
    track=None,
    decoding: str = "attention",
) -> ParityReport:
    """Run the TFLite file and the PyTorch decoding on the same random inputs.

    The PyTorch side is the training path (``fit_length``, then the decoding's read-out) of
    :func:`as_stored`'s network, so this also checks that the in-graph resampling and padding
    equal the data pipeline's.

    Args:
        track: wraps the loop over lengths for progress, e.g. ``Job.track`` (optional).
        decoding: the route the file was exported with (a registered decoding).
    """
    if weights not in TOLERANCE:
        raise ValueError(f"weights {weights!r} is not one of {tuple(TOLERANCE)}")
    method = decodings.get(decoding)
    net = as_stored(net, weights)
    runner = TFLiteRunner(model_path)
    f, c = net.config.max_frames, net.config.num_columns
    lengths = lengths or (0, 1, 2, 17, f, f + 50, 1000)
    rng = np.random.default_rng(seed)
    inputs: Iterable[int] = lengths if track is None else track(lengths, len(lengths), "parity")
    rows = []
    for t in inputs:
        x = random_input(t, c, rng)
        padded = torch.from_numpy(fit_length(x, f))[None]
        out = runner.outputs(x)
        with torch.no_grad():
            if falls_back(net, decoding, padded):
                rows.append(fallback_row(net, t, out))
            else:
                rows.append(method.parity_row(net, t, out, padded))
    return ParityReport(rows, TOLERANCE[weights], allow_near_ties=method.near_ties(weights))
