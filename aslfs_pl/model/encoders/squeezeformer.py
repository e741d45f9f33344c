"""The Squeezeformer family (Kim et al. 2022, arXiv:2206.00888): self-attention, MLP, conv
module, MLP in every block, and a temporal U-Net: the middle blocks run at a reduced frame rate
(:class:`~aslfs_pl.model.encoders.conformer.ConvAttentionStack`, which also holds the blocks and
the export form)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aslfs_pl.model.encoders.base import register
from aslfs_pl.model.encoders.conformer import ConformerSettings, ConvAttentionStack

if TYPE_CHECKING:
    from aslfs_pl.model.config import ModelConfig


@dataclass
class SqueezeformerSettings(ConformerSettings):
    """The Squeezeformer's settings (``model.encoder_conf``): the Conformer's, and:"""

    time_reduction: int = 2
    """Frames merged into one from block ``encoder_blocks // 2`` to the last block, which runs at
    the full rate again on the restored frames plus the ones from before the reduction (1
    disables it)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.time_reduction < 1:
            raise ValueError(
                f"model.encoder_conf.time_reduction {self.time_reduction} must be >= 1"
            )


@register
class Squeezeformer(ConvAttentionStack):
    """Squeezeformer blocks, the middle ones at ``1 / time_reduction`` of the frame rate."""

    name = "squeezeformer"
    Settings = SqueezeformerSettings
    legacy = {"block_kernel": "kernel", "time_reduction": "time_reduction"}

    @classmethod
    def check(cls, config: ModelConfig) -> None:
        reduction = config.encoder_settings.time_reduction
        if reduction > 1 and config.encoder_blocks < 3:
            raise ValueError(
                f"model.encoder_conf.time_reduction {reduction} needs model.encoder_blocks >= 3 "
                f"(full rate, reduced, full rate again), got {config.encoder_blocks}"
            )

    def __init__(self, config: ModelConfig):
        s = config.encoder_settings
        super().__init__(
            config,
            s.kernel,
            macaron=False,
            time_reduction=s.time_reduction,
            post_norm=s.post_norm,
        )
