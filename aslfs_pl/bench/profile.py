"""Where a training step's time goes, operator by operator (``scripts/bench_train.py --profile``).

A :class:`StepProfile` callback records a few optimiser steps with ``torch.profiler``; :func:`breakdown`
sums each operator's self time (the CPU's, or the GPU's on CUDA) into groups: matrix products and
fused attention kernels (the arithmetic), convolutions, the random draws of dropout masks, copies,
softmax, norms, the remaining elementwise operators, and the framework (autograd's nodes, the
optimiser's Python). The optimiser's share is wall-clock: from the gradients' readiness (Lightning's
``on_before_optimizer_step``, which runs inside ``optimizer.step``'s closure) to the step's end,
gradient clipping included, over the whole step.

On an XLA device the operators run inside compiled graphs: torch.profiler sees only their tracing,
so the breakdown is refused there (see ``docs/benchmarks.md`` for the XLA route).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import torch
from lightning.pytorch import Callback
from torch.profiler import ProfilerActivity, profile

#: Operator groups by aten name (without ``aten::``); a name matching none is elementwise.
GROUPS: dict[str, frozenset[str]] = {
    "matmul": frozenset({"mm", "bmm", "addmm", "baddbmm", "addbmm", "mv", "dot", "addmv"}),
    "dropout masks": frozenset(
        {"bernoulli_", "bernoulli", "uniform_", "random_", "normal_", "rand", "rand_like"}
    ),
    "copies": frozenset(
        {
            "copy_",
            "cat",
            "clone",
            "contiguous",
            "_to_copy",
            "stack",
            "constant_pad_nd",
            "index",
            "index_select",
            "gather",
            "scatter",
            "scatter_add_",
            "repeat",
            "fill_",
            "zero_",
            "masked_fill_",
            "masked_fill",
            "index_put_",
            "_index_put_impl_",
            "slice_backward",
            "select_backward",
            "embedding_dense_backward",
            "new_zeros",
            "zeros",
            "zeros_like",
        }
    ),  # fmt: skip
    "softmax": frozenset(
        {"_softmax", "_softmax_backward_data", "_log_softmax", "_log_softmax_backward_data"}
    ),
    "norms": frozenset(
        {
            "native_layer_norm",
            "native_layer_norm_backward",
            "native_batch_norm",
            "native_batch_norm_backward",
            "var_mean",
            "batch_norm_backward",
            "_batch_norm_with_update",
            "_native_batch_norm_legit",
            "_native_batch_norm_legit_functional",
        }
    ),  # fmt: skip
}

#: Substrings of fused attention kernels' names (CPU flash, CUDA flash / memory-efficient / cuDNN).
ATTENTION_KERNELS = ("flash_attention", "efficient_attention", "cudnn_attention")

#: The groups that are the step's arithmetic (the share the issue of a lean step aims at).
ARITHMETIC = ("matmul", "fused attention")


def group_of(name: str) -> str:
    """The group of a profiler event named ``name``."""
    if not name.startswith("aten::"):
        return "python + autograd"
    op = name.removeprefix("aten::")
    if any(k in op for k in ATTENTION_KERNELS):
        return "fused attention"
    if "convolution" in op:
        return "convolutions"
    for group, ops in GROUPS.items():
        if op in ops:
            return group
    return "elementwise"


@dataclass
class Breakdown:
    """Self time by group and by operator (microseconds over the profiled steps)."""

    steps: int
    device: str
    by_group: dict[str, float] = field(default_factory=dict)
    by_op: dict[str, float] = field(default_factory=dict)
    optimiser: float = 0.0
    """The optimiser's share of the steps' wall-clock time (see the module doc)."""

    @property
    def total(self) -> float:
        return sum(self.by_group.values())

    def share(self, *groups: str) -> float:
        return sum(self.by_group.get(g, 0.0) for g in groups) / max(self.total, 1e-9)

    def lines(self, top: int = 3) -> list[str]:
        """The table: each group's ms a step, share and largest operators; then the shares of
        the arithmetic and the optimiser."""
        per_step = 1e-3 / self.steps
        out = [
            f"  profile ({self.device} self time, {self.steps} steps): "
            f"{self.total * per_step:.1f} ms a step in operators"
        ]
        ops_of: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for name, us in self.by_op.items():
            ops_of[group_of(name)].append((us, name.removeprefix("aten::")))
        for group, us in sorted(self.by_group.items(), key=lambda kv: -kv[1]):
            largest = sorted(ops_of[group], reverse=True)[:top]
            names = ", ".join(f"{n} {u / self.total:.1%}" for u, n in largest)
            out.append(f"    {group:16s} {us * per_step:9.1f} ms {us / self.total:6.1%}  ({names})")
        out.append(
            f"  matmul + fused attention share {self.share(*ARITHMETIC):.1%} of the operators' "
            f"time; clipping + the optimiser's update {self.optimiser:.1%} of the step"
        )
        return out


def breakdown(prof: torch.profiler.profile, steps: int, device: torch.device) -> Breakdown:
    """Sum a finished profile's self times by :func:`group_of` (the device's time on CUDA)."""
    cuda = device.type == "cuda"
    out = Breakdown(steps, "GPU" if cuda else "CPU")
    for event in prof.key_averages():
        us = event.self_device_time_total if cuda else event.self_cpu_time_total
        if us <= 0 or (cuda and not event.key.startswith("aten::")):
            continue  # on a GPU, host-side records hold no device time of their own
        out.by_op[event.key] = out.by_op.get(event.key, 0.0) + us
        group = group_of(event.key)
        out.by_group[group] = out.by_group.get(group, 0.0) + us
    return out


class StepProfile(Callback):
    """Profiles the optimiser steps ``start`` .. ``start + steps`` of a fit; ``result`` is their
    :class:`Breakdown` once they have run."""

    def __init__(self, start: int, steps: int):
        self.start, self.steps = start, steps
        self.prof: profile | None = None
        self.result: Breakdown | None = None
        self._began = self._gradients = 0.0
        self._step = self._update = 0.0  # seconds: whole steps, and their updates

    def _now(self, module) -> float:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)
        return time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.start and self.prof is None:
            device = pl_module.device
            if device.type == "xla":
                raise SystemExit(
                    "--profile: on an XLA device the operators run in compiled graphs that "
                    "torch.profiler does not see; see docs/benchmarks.md for the XLA route"
                )
            activities = [ProfilerActivity.CPU]
            if device.type == "cuda":
                activities.append(ProfilerActivity.CUDA)
                torch.cuda.synchronize(device)
            self.prof = profile(activities=activities)
            self.prof.__enter__()
        if self.prof is not None and self.result is None:
            self._began = self._now(pl_module)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.prof is not None and self.result is None:
            self._gradients = self._now(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.prof is None or self.result is not None:
            return
        end = self._now(pl_module)
        self._step += end - self._began
        self._update += end - self._gradients
        if trainer.global_step == self.start + self.steps:
            self.prof.__exit__(None, None, None)
            self.result = breakdown(self.prof, self.steps, pl_module.device)
            self.result.optimiser = self._update / self._step
