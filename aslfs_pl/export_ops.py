"""What a layer's export form is made of: ops that lower to TFLite with a symbolic frame axis.

Each trained layer (``layers.py``, ``stems/``, ``encoders/``, ``decoder_block.py``, ``decoder.py``) has an ``export_form()`` that
returns its deployment twin, an :class:`ExportForm`, written in the same file as the layer. The
twins compute the trained forward again on 2-D ``(frames, channels)`` tensors with the ops that
litert-torch lowers well when the frame count is symbolic (its TFLite-native decompositions:
matmul, mean, softmax, where, gather, cat, slice, comparisons of two tensors, elementwise
arithmetic, gelu, rsqrt, topk; plus tanh, isnan, casts and conv1d). LayerNorm, SiLU, sigmoid,
masked_fill, sum, argmax, F.pad and comparisons with a Python number do not lower with a symbolic
frame count, so the helpers below stand in for them.

Weights are folded once, eagerly, when the twin is built (normalisation affines into the next
layer, batch norm into the layer before it, the score scale into the queries) and kept as
non-persistent buffers, so the traced graph holds only the per-frame computation. A twin
records the trained modules whose own parameters and buffers it accounts for
(:meth:`ExportForm.covers`: folded, copied, or deliberately left out, like a training-only head);
the deployment graph checks that every parameter and buffer of the trained network is covered by
some twin, so a layer (or a weight) added without an export form fails at export time, by name,
instead of being silently left out.

Graph size matters for conversion time: litert-torch retraces the whole program several times,
at a cost proportional to its node count. ``F.linear`` decomposes into seven nodes (transpose,
batch matmul, two scalar multiplies by 1 and their constants, add); :func:`linear` on a weight
stored transposed is two. A Python scalar in an op becomes a node of its own; the twins use
one-element constant tensors where an op repeats per layer or per decoder step (norm eps, mask
thresholds); the few Python scalars left run once per graph.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

Linear = tuple[Tensor, Tensor]  # (weight transposed (in, out), bias (out,))


def const(value: float) -> Tensor:
    """A one-element float tensor: the TFLite converter compares tensors with tensors only."""
    return torch.tensor([value], dtype=torch.float32)


def linear(x: Tensor, weights: Linear) -> Tensor:
    """``x @ w + b`` with ``w`` stored transposed: (n, in) -> (n, out)."""
    w_t, b = weights
    return x @ w_t + b


def sigmoid(x: Tensor) -> Tensor:
    return 0.5 * torch.tanh(0.5 * x) + 0.5  # sigmoid itself does not lower with a symbolic T


def log_softmax(x: Tensor) -> Tensor:
    """``torch.log_softmax(x, -1)`` for rows on a symbolic frame axis (whose own decomposition
    does not lower there): ``x - max - log(mean(exp(x - max)) * V)``."""
    shifted = x - torch.topk(x, 1).values
    return shifted - torch.log(torch.exp(shifted).mean(-1, keepdim=True) * x.shape[-1])


def normalise(x: Tensor, eps: Tensor) -> Tensor:
    """LayerNorm without its scale and shift (folded into the layer that reads the output)."""
    xc = x - x.mean(-1, keepdim=True)
    return xc * torch.rsqrt((xc * xc).mean(-1, keepdim=True) + eps)


def fold_norm(layer: nn.Linear, norm: nn.LayerNorm | None) -> tuple[Tensor, Tensor]:
    """``layer(norm(x))`` as (weight, bias) of a linear layer applied to ``normalise(x)``."""
    weight, bias = layer.weight, layer.bias
    if bias is None:
        bias = torch.zeros(weight.shape[0])
    if norm is None:
        return weight, bias
    return weight * norm.weight, bias + weight @ norm.bias


def bn_scale_shift(bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm as ``x * scale + shift``."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class ExportForm(nn.Module):
    """Base of every layer's deployment twin (see the module doc).

    Subclasses fold their weights in ``__init__`` with :meth:`put` / :meth:`put_linear` and
    declare the trained weights they account for with :meth:`covers` (``put_linear`` does it).
    """

    def __init__(self) -> None:
        super().__init__()
        self._covered: list[Tensor] = []

    def covers(self, *items: nn.Module | Tensor) -> None:
        """Record what this twin folded, copied or deliberately leaves out: a module's OWN
        parameters and buffers (not its children's), or single tensors (a container's buffer,
        so that a weight added to the container later is not covered by accident)."""
        for item in items:
            if isinstance(item, nn.Module):
                self._covered.extend((*item.parameters(recurse=False), *item.buffers(False)))
            else:
                self._covered.append(item)

    def covered_tensors(self) -> set[int]:
        """``id()`` of every trained tensor covered by this twin and every twin inside it."""
        forms = (f for f in self.modules() if isinstance(f, ExportForm))
        return {id(t) for form in forms for t in form._covered}

    def put(self, key: str, value: Tensor) -> None:
        """Keep ``value`` (a detached copy) as the non-persistent buffer ``key``."""
        self.register_buffer(key, value.detach().clone().contiguous(), persistent=False)

    def put_linear(self, key: str, layer: nn.Linear, norm: nn.LayerNorm | None = None) -> None:
        """``layer`` (with ``norm``'s affine folded in) as ``key``; read it back with
        :meth:`weights`."""
        self.put_weights(key, *fold_norm(layer, norm))
        self.covers(*(m for m in (layer, norm) if m is not None))

    def put_weights(self, key: str, weight: Tensor, bias: Tensor) -> None:
        """A (out, in) weight and its bias as ``key`` (stored transposed for :func:`linear`)."""
        self.put(f"{key}_wt", weight.t())
        self.put(f"{key}_b", bias)

    def weights(self, key: str) -> Linear:
        return getattr(self, f"{key}_wt"), getattr(self, f"{key}_b")


class MissingExportForm(TypeError):
    """A trained layer has no deployment twin; the message names it."""


def export_form(module: nn.Module, *args, **kwargs) -> ExportForm:
    """``module.export_form(*args, **kwargs)``, or :class:`MissingExportForm` naming its class."""
    make = getattr(module, "export_form", None)
    if make is None:
        raise MissingExportForm(
            f"layer {type(module).__name__} has no export_form(): write its deployment twin "
            "beside it (see aslfs_pl/export_ops.py)"
        )
    return make(*args, **kwargs)
