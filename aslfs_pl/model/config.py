"""The network's shape: one typed dataclass, a docstring under each field.

A new model setting is one field here: the training CLI offers it as ``--model.<field>``
(:class:`aslfs_pl.task.Seq2SeqTask` passes its ``**net`` settings through to this class, and
jsonargparse reads the fields and their docstrings from it), checkpoints record it, and
:class:`aslfs_pl.model.seq2seq.Seq2Seq` reads it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from typing import Any

from aslfs_pl import vocab
from aslfs_pl.model.encoders import ENCODERS
from aslfs_pl.model.encoders.local_global import LocalGlobalEncoder
from aslfs_pl.model.registry import Registry
from aslfs_pl.model.stems import STEMS
from aslfs_pl.model.stems.conv_eca import ConvECAStem

log = logging.getLogger(__name__)

#: The settings that say how a trained network's phrases are read out, not which network it is:
#: a checkpoint can be read with other values of them (``decoding`` is the task's setting,
#: :class:`aslfs_pl.task.Seq2SeqTask`).
READ_OUT = (
    "decoding",
    "beam_width",
    "beam_length_penalty",
    "fallback_phrase",
    "fallback_frames",
    "fallback_confidence",
)
#: Settings that act in training only.
TRAINING_ONLY = ("dropout", "attention_dropout", "drop_path")


@dataclass
class ModelConfig:
    """Shape of the network. Defaults are the seed design (13-14M parameters at dim 256)."""

    num_columns: int = 176
    """Raw landmark columns per frame (set from the data module's landmark set)."""
    num_axes: int = 2
    """Axes per landmark, x, y[, z] (set from the data module)."""
    vocab_size: int = vocab.VOCAB_SIZE
    """Output classes: 59 characters + pad, start, end (set from the data module)."""
    hand_columns: dict[str, list[int]] | None = None
    """The landmark set's mirror image and hands, as column positions (set from the data module:
    ``LandmarkSet.hand_columns()``); read by ``flip_left_handed``."""
    flip_left_handed: bool = False
    """Mirror each sequence whose left hand is seen more than its right hand, in training and in
    the file, so every signer reads as right-handed (the 2nd place's preprocessing;
    :mod:`aslfs_pl.model.handedness`). It undoes the random flip (``data.augment.flip_p``)."""
    max_frames: int = 384
    """Frames per sequence, the longest frame axis the positional encoding covers (set from
    ``data.max_frames``)."""
    max_target_len: int = 32
    """Decoder steps, phrase characters + end token (set from ``data.max_target_len``)."""
    dim: int = 256
    """Model width."""
    heads: int = 4
    """Attention heads."""
    mlp_ratio: int = 4
    """MLP hidden width / dim."""
    stem: str = ConvECAStem.name
    """The stem, what embeds the raw landmark frames: a name of the stem registry
    (:mod:`aslfs_pl.model.stems`; ``conv_eca``: features, dense, batch norm, causal conv + ECA
    blocks, the seed's; ``dense``: each axis normalised over the sequence, one dense layer, the
    2nd place's)."""
    stem_conf: dict[str, Any] = field(default_factory=dict)
    """The stem's own settings, by name, e.g. ``{kernel: 11}`` (``--model.stem_conf.kernel 11``);
    unset ones keep the stem's defaults. Each stem's settings: docs/architecture.md."""
    encoder: str = LocalGlobalEncoder.name
    """Encoder family: a name of the encoder registry (:mod:`aslfs_pl.model.encoders`):
    ``local_global`` (blocks of local causal and global self-attention, then an MLP; the seed's,
    ``seed`` in older configs), ``conformer`` (Gulati et al. 2020: half-step MLP,
    self-attention, conv module, half-step MLP, norm), ``squeezeformer`` (Kim et al. 2022:
    self-attention, MLP, conv module, MLP, the middle blocks at a reduced frame rate) or
    ``conv_transformer`` (the 2nd place's: conv blocks and transformer blocks, one conv of stride
    2 halving the frames)."""
    encoder_conf: dict[str, Any] = field(default_factory=dict)
    """The encoder family's own settings, by name, e.g. ``{kernel: 15}``
    (``--model.encoder_conf.kernel 15``); unset ones keep the family's defaults. Each family's
    settings: docs/architecture.md."""
    encoder_blocks: int = 6
    """Encoder blocks."""
    rotary: bool = False
    """Rotary position embeddings (Su et al. 2021) in every encoder self-attention layer,
    instead of the positions the embedding adds."""
    decoder_rotary: bool = False
    """Rotary position embeddings in every decoder self-attention layer, instead of the
    positions added to the token embeddings (cross-attention has none: phrase positions and
    frames share no axis). With ``rotary``: rotary positions in every self-attention layer."""
    decoder_blocks: int = 3
    """Decoder blocks."""
    decoder_mlp: int = 0
    """Hidden width of the decoder's MLPs (0: ``mlp_ratio`` x ``dim``, as the encoder's; the 1st
    place's decoder: 512 at width 208)."""
    dropout: float = 0.1
    """Dropout on residual branches (and on attention weights unless ``attention_dropout``)."""
    attention_dropout: float | None = None
    """Dropout on attention weights; None: ``dropout``'s rate. 0 lets the CPU train attention
    in its fused kernel, which has no dropout (a GPU's kernels draw it inside)."""
    drop_path: float = 0.0
    """Stochastic depth of the encoder's sub-layers: the last block's rate, earlier blocks
    linearly less (0 disables it)."""
    beam_width: int = 4
    """Hypotheses the ``beam`` decoding keeps at each step (1: the greedy phrase)."""
    beam_length_penalty: float = 0.0
    """Added to a ``beam`` hypothesis's score for each token it emits, its end token included
    (the 4th place's linear length penalty: 0.15); > 0 favours longer phrases, 0 ranks by
    summed log-probability alone."""
    ctc_head: bool = False
    """A per-frame character head on the encoder, trained with a CTC loss and read by the
    decodings that need it. Not a flag of its own: the task sets it from ``model.ctc_weight > 0``."""
    ctc_gru: bool = False
    """The CTC head reads the encoded frames through a GRU and two dense layers (the 2nd
    place's head); False: one linear layer. In the TFLite file the GRU is unrolled over
    ``max_frames`` steps."""
    backward_decoder: bool = False
    """A second decoder, trained on the phrases read right to left (:mod:`aslfs_pl.model.backward`);
    training only. Not a flag of its own: the task sets it from ``model.backward_weight > 0``."""
    confidence_head: bool = False
    """A head estimating how well the decoder reads a sequence (:mod:`aslfs_pl.model.fallback`).
    Not a flag of its own: the task sets it from ``model.confidence_weight > 0``."""
    fallback_phrase: str = ""
    """What a hopeless sequence reads as (see ``fallback_frames``, ``fallback_confidence``):
    a phrase close to every phrase on average (the 1st place's, for Kaggle's data:
    ``"2 a-e -aroe"``; ``scripts/fallback_phrase.py`` finds one for a dataset)."""
    fallback_frames: int = 0
    """Sequences with fewer valid frames than this read as ``fallback_phrase`` (0: never)."""
    fallback_confidence: float = 0.0
    """Sequences whose confidence (the confidence head's estimate, 0..1) is under this read as
    ``fallback_phrase`` (0: never; needs the head, ``model.confidence_weight > 0``)."""

    def __post_init__(self) -> None:
        if self.num_columns % self.num_axes:
            raise ValueError(
                f"model.num_columns {self.num_columns} is not a multiple of num_axes {self.num_axes}"
            )
        if self.flip_left_handed:
            hands = self.hand_columns or {}
            if not (hands.get("left_hand") and hands.get("right_hand")):
                raise ValueError(
                    "model.flip_left_handed needs both hands among the landmarks "
                    "(model.hand_columns, set from data.landmarks)"
                )
            if len(hands["left_hand"]) != len(hands["right_hand"]):
                raise ValueError("model.flip_left_handed needs as many points of each hand")
            if len(hands["mirror"]) != self.num_columns:
                raise ValueError(
                    f"model.hand_columns describes {len(hands['mirror'])} columns, the model "
                    f"reads {self.num_columns}"
                )
        if self.dim % self.heads:
            raise ValueError(f"model.dim {self.dim} is not divisible by model.heads {self.heads}")
        if self.dim % 2:
            raise ValueError(f"model.dim {self.dim} must be even (sinusoidal positions)")
        for registry, conf in ((STEMS, self.stem_conf), (ENCODERS, self.encoder_conf)):
            name = getattr(self, registry.setting)
            registry.settings(name, conf)  # raises naming the setting
            registry.get(name).check(self)
        for name in ("rotary", "decoder_rotary"):
            if getattr(self, name) and (self.dim // self.heads) % 2:
                raise ValueError(
                    f"model.{name} needs an even head width, got dim {self.dim} / heads "
                    f"{self.heads}"
                )
        if self.decoder_mlp < 0:
            raise ValueError(
                f"model.decoder_mlp {self.decoder_mlp} must be >= 0 (0: dim x mlp_ratio)"
            )
        if self.beam_width < 1:
            raise ValueError(f"model.beam_width {self.beam_width} must be >= 1")
        if self.beam_width > self.vocab_size:
            raise ValueError(
                f"model.beam_width {self.beam_width} is more than the {self.vocab_size} classes"
            )
        try:
            phrase = vocab.encode(self.fallback_phrase)
        except vocab.UnknownCharacterError as err:
            raise ValueError(f"model.fallback_phrase: {err}") from None
        if len(phrase) >= self.max_target_len:
            raise ValueError(
                f"model.fallback_phrase has {len(phrase)} characters: at most "
                f"max_target_len - 1 = {self.max_target_len - 1}"
            )
        if self.fallback_frames < 0:
            raise ValueError(f"model.fallback_frames {self.fallback_frames} must be >= 0")
        if not 0.0 <= self.fallback_confidence < 1.0:
            raise ValueError(
                f"model.fallback_confidence {self.fallback_confidence} must lie in [0, 1)"
            )
        if self.fallback_confidence > 0 and not self.confidence_head:
            raise ValueError(
                "model.fallback_confidence needs the confidence head: train with "
                "model.confidence_weight > 0"
            )
        for name in ("dropout", "attention_dropout", "drop_path"):
            if getattr(self, name) is not None and not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"model.{name} {getattr(self, name)} must lie in [0, 1)")

    @property
    def encoder_settings(self) -> Any:
        """The encoder family's ``Settings`` (``encoder_conf`` over its defaults)."""
        return ENCODERS.settings(self.encoder, self.encoder_conf)

    @property
    def stem_settings(self) -> Any:
        """The stem's ``Settings`` (``stem_conf`` over its defaults)."""
        return STEMS.settings(self.stem, self.stem_conf)


#: The settings that define the network its weights belong to: a checkpoint's stay as trained
#: (the sizes, the families, the positions; several change no weight's shape).
NETWORK = tuple(f.name for f in fields(ModelConfig) if f.name not in READ_OUT + TRAINING_ONLY)


def legacy_settings() -> dict[str, list[tuple[Registry, str, str]]]:
    """The flat ``model.*`` fields of older versions that are a part's own settings now: each ->
    [(its registry, the part, the setting's name there)]."""
    moved: dict[str, list[tuple[Registry, str, str]]] = {}
    for registry in (STEMS, ENCODERS):
        for old, places in registry.legacy_fields().items():
            moved.setdefault(old, []).extend((registry, part, new) for part, new in places)
    return moved


def upgrade_settings(net: dict[str, Any]) -> dict[str, Any]:
    """Network settings of an older version (a checkpoint's) in today's form: each flat field
    that is now a stem's or an encoder family's own setting moves under ``stem_conf`` /
    ``encoder_conf`` when the part it names has it, and is dropped otherwise (it did nothing
    there: a Conformer's ``window``). Today's settings pass through unchanged."""
    net, old = dict(net), legacy_settings()
    moved = {k: net.pop(k) for k in list(net) if k in old}
    if not moved:
        return net
    for registry in (STEMS, ENCODERS):
        part = registry.get(net.get(registry.setting, getattr(ModelConfig, registry.setting)))
        kept = {part.legacy[k]: v for k, v in moved.items() if k in part.legacy}
        key = f"{registry.setting}_conf"
        net[key] = {**kept, **net.get(key, {})}
    log.info("older network settings %s read as stem_conf / encoder_conf", ", ".join(moved))
    return net


def legacy_hint(name: str) -> str | None:
    """For a flat ``model.<name>`` of an older version: how to write it now (None for others)."""
    places = legacy_settings().get(name)
    if not places:
        return None
    spots: dict[str, list[str]] = {}
    for registry, part, new in places:
        spots.setdefault(f"model.{registry.setting}_conf.{new}", []).append(part)
    where = " or ".join(
        f"{spot} (model.{spot.split('.')[1].removesuffix('_conf')} {' or '.join(parts)})"
        for spot, parts in spots.items()
    )
    return f"model.{name} is a part's own setting now: write {where}"
