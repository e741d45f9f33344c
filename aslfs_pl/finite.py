"""The training loss's finite check: the first non-finite loss stops the fit, naming its step.

``step`` mode checks every step on the host (one sync per step); ``epoch`` mode remembers the
first bad step of the epoch on the device and raises at the epoch's end (no per-step sync: the
default under torch-xla, where a host read would cut the step's graph).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

MODES = ("auto", "step", "epoch", "off")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; the message names the step."""


class FiniteLossCheck(nn.Module):
    """Watches the training loss (a module for its device buffers, moved with the task).

    Args:
        mode: ``auto`` (``epoch`` on torch-xla, else ``step``), ``step``, ``epoch`` or ``off``.
    """

    def __init__(self, mode: str = "auto"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"model.check_finite = {mode!r}: auto, step, epoch or off")
        self.mode = mode
        # training steps of this epoch so far, and the first of them with a non-finite loss (-1:
        # none). A counter kept on the device, not torch.tensor(global_step) each step:
        # torch-xla compiled a new graph for each of the first few such values.
        self.register_buffer("epoch_steps", torch.tensor(0), persistent=False)
        self.register_buffer("first_bad_step", torch.tensor(-1), persistent=False)
        self.epoch_start_step = 0

    def mode_on(self, device: torch.device) -> str:
        if self.mode == "auto":
            return "epoch" if device.type == "xla" else "step"
        return self.mode

    def start_epoch(self, global_step: int) -> None:
        self.epoch_steps.zero_()
        self.first_bad_step.fill_(-1)
        self.epoch_start_step = global_step

    def step(self, loss: Tensor, where: Callable[[], str]) -> None:
        """One training step's loss; ``where()`` names the step (and its batch) in the error."""
        mode = self.mode_on(loss.device)
        if mode == "step" and not torch.isfinite(loss):
            raise NonFiniteLossError(f"training loss is {loss.item()} at {where()}")
        if mode == "epoch":
            bad = (~torch.isfinite(loss)) & (self.first_bad_step < 0)
            self.first_bad_step = torch.where(bad, self.epoch_steps, self.first_bad_step)
            self.epoch_steps += 1

    def end_epoch(self, epoch: int, device: torch.device) -> None:
        if self.mode_on(device) == "epoch" and int(self.first_bad_step) >= 0:
            step = self.epoch_start_step + int(self.first_bad_step)
            raise NonFiniteLossError(
                f"training loss became non-finite at global step {step} "
                f"(found at the end of epoch {epoch})"
            )
