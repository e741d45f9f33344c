"""The deployment graph: Kaggle's signature around the network's export form.

``KaggleModel(net, decoding)(inputs)``: ``inputs`` (T, C) float32 raw columns in
``selected_columns`` order, any T >= 0, NaN allowed -> ``{"outputs": (K, vocab)}``, decoded by
Kaggle's per-row argmax; what the K rows hold is the decoding's (``decoding``: a registered one,
see :mod:`aslfs_pl.model.decoding`).

The network part is :meth:`Seq2Seq.export_form`, built from each layer's own deployment twin
(:mod:`aslfs_pl.export_ops`); :func:`export_twin` checks that the twins cover every trained
module. This module adds only what Kaggle's signature needs: the frame axis.

How the frame axis changes (T = input frames, F = ``max_frames``), exported as a symbolic
dimension so a 40-frame video costs 40 frames, not F:
- one NaN row is appended, so the graph never sees 0 frames (T = 0 reads as one empty frame);
- n = T + 1 rows run through the model. When T > F the first F rows are the training resampling
  (``fit_length``'s indices) and the remaining T + 1 - F rows are NaN;
- a NaN row is an invalid frame. Invalid frames at the end change no other frame's output (the
  stem's convolutions and local attention are causal; the Conformer's centred conv module sees
  invalid frames as zeros, as its own padding, and the Squeezeformer's merge pads with invalid
  frames; global attention, ECA pooling and cross-attention skip invalid frames), so the result
  equals the training path's F-frame padded input; the parity
  tests check it at every length.
Cost: a sequence of T <= F frames costs T + 1 frames; a longer one costs all its T + 1 rows (the
rows after F are invalid but still computed), and attention is quadratic in them: 807 frames (the
longest Kaggle sequence) run 808 rows, while very long inputs (tens of thousands of frames) exhaust
memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aslfs_pl.deploy.stages import ExportError
from aslfs_pl.export_ops import MissingExportForm, const, export_form
from aslfs_pl.model.seq2seq import Seq2Seq, Seq2SeqExport


def export_twin(net: Seq2Seq, decoding: str = "attention") -> Seq2SeqExport:
    """The network's export form for ``decoding``, checked to cover every trained parameter and
    buffer.

    Raises:
        ExportError: ``[check]``, naming the weights no export form accounts for, or a decoding
            the network cannot do.
    """
    try:
        with torch.no_grad():
            twin = export_form(net, decoding).eval()
    except (MissingExportForm, ValueError) as err:
        raise ExportError(f"[check] {err}") from err
    covered = twin.covered_tensors()
    owners = dict(net.named_modules())
    missing = [
        f"{name} ({type(owners[name.rpartition('.')[0]]).__name__})"
        for name, t in (*net.named_parameters(), *net.named_buffers())
        if id(t) not in covered
    ]
    if missing:
        raise ExportError(
            f"[check] no export form covers these trained weights: {', '.join(missing)}; give "
            "each layer an export_form() beside it (aslfs_pl/export_ops.py)"
        )
    return twin


class KaggleModel(nn.Module):
    """Kaggle's signature around :func:`export_twin` of ``net`` (see the module doc).

    A snapshot: the weights are folded from ``net`` when this is built. CPU only.
    """

    def __init__(self, net: Seq2Seq, decoding: str = "attention"):
        super().__init__()
        cfg = net.config
        self.num_columns = cfg.num_columns
        self.net = export_twin(net, decoding)
        self.register_buffer("max_frames", const(float(cfg.max_frames)), persistent=False)
        self.register_buffer("half_step", const(0.5), persistent=False)

    def frames(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """(T, C) -> rows (n, C) with n = T + 1 (see module doc) and their indices (n,) float."""
        x = torch.cat([inputs, torch.full((1, self.num_columns), float("nan"))], 0)  # (n, C)
        # arange(start, end, step): the overload litert-torch's torch_tfl table lowers
        j = torch.arange(0, x.shape[0], 1).to(torch.float32)  # (n,)
        t = j[-1:]  # (1,): T, exactly (TFLite's MEAN of 0..T gave 119.99999 for 120)
        f = self.max_frames
        # fit_length's indices (i * T) // F, in float32 with a half-step guard: exact while
        # i * T + 0.5 < 2^23, i.e. T < 21,845 at F = 384 (Kaggle's longest sequence: 807)
        resampled = ((j * t + self.half_step) / f).to(torch.int32).to(torch.float32)
        idx = torch.where(t > f, torch.where(j < f, resampled, t), j)  # row T is the NaN row
        return F.embedding(idx.to(torch.int32), x), j

    def forward(self, inputs: Tensor) -> dict[str, Tensor]:
        x, j = self.frames(inputs)
        return {"outputs": self.net(x, j)}
