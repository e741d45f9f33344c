"""Decoder-input augmentations: the teacher-forced input characters, corrupted in the training
step on the device (no host sync), so the decoder learns to read the frames rather than trust its
own history (the 1st and 4th places' trick). Their settings are the task's (``model.token_noise``,
``model.token_noise_mode``): validation and inference never see them."""

from __future__ import annotations

import torch
from torch import Tensor

from aslfs_pl import vocab

#: What a corrupted input becomes: ``replace``, a random character (the 4th place's); ``mask``,
#: the pad token (the 1st place's masking).
TOKEN_NOISE_MODES = ("replace", "mask")


class TokenNoise:
    """A fraction ``p`` of the input characters corrupted as ``mode`` says; the start token, end
    and padding are never changed."""

    def __init__(self, p: float, mode: str = "replace"):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"model.token_noise = {p}: a fraction in [0, 1)")
        if mode not in TOKEN_NOISE_MODES:
            raise ValueError(f"model.token_noise_mode = {mode!r}: replace or mask")
        self.p, self.mode = p, mode

    def __call__(self, inputs: Tensor) -> Tensor:  # (B, L) decoder input tokens
        if self.p <= 0:
            return inputs
        chars = inputs < vocab.NUM_CHARACTERS
        hit = chars & (torch.rand(inputs.shape, device=inputs.device) < self.p)
        if self.mode == "mask":
            noise = torch.full_like(inputs, vocab.PAD)
        else:
            noise = torch.randint_like(inputs, vocab.NUM_CHARACTERS)
        return torch.where(hit, noise, inputs)
