"""A network with the data settings it goes with, from a checkpoint or from a config.

Both go through Lightning: a checkpoint through ``Seq2SeqTask.load_from_checkpoint`` (and the
data module's recorded hyperparameters), a config through the training CLI's own parser
(:func:`aslfs_pl.cli.main` with ``run=False``), so stacked ``--config`` files and overrides such
as ``--model.dim 192`` mean in every script what they mean in training.
"""

from __future__ import annotations

import argparse
import io
import typing
from dataclasses import dataclass
from pathlib import Path

import torch

from aslfs_pl.data.datamodule import KaggleDataModule
from aslfs_pl.data.landmarks import LandmarkSet
from aslfs_pl.model.config import READ_OUT, ModelConfig
from aslfs_pl.model.decoding import DECODINGS, usable
from aslfs_pl.model.ensemble import Ensemble
from aslfs_pl.model.seq2seq import Seq2Seq
from aslfs_pl.task import Seq2SeqTask


class LoadError(RuntimeError):
    """A checkpoint or a config could not give a network; the message names the file or the
    setting (``[load]`` or ``[config]``) and the cause."""


@dataclass
class Trained:
    """A network (eval mode, CPU) and the data module it was (or would be) trained with."""

    task: Seq2SeqTask
    datamodule: KaggleDataModule
    val_scores: dict | None = None
    """The checkpoint's held-out score of each decoding (``{"epoch": E, "scores": {...}}``, see
    :meth:`aslfs_pl.task.Seq2SeqTask.on_save_checkpoint`); None from a config or an older
    checkpoint."""

    ensemble: Ensemble | None = None
    """Several networks read as one (:mod:`aslfs_pl.model.ensemble`; :func:`ensemble_of`): the
    task and data module are its first member's."""

    @property
    def net(self) -> Seq2Seq:
        return self.ensemble if self.ensemble is not None else self.task.net

    @property
    def landmarks(self) -> LandmarkSet:
        return self.datamodule.landmarks

    @property
    def decoding(self) -> str:
        """How the task reads phrases out (``model.decoding``): the export's default route."""
        return self.task.hparams.get("decoding", "attention")


def load_checkpoint(
    path: str | Path, data_dir: str | None = None, model: dict | None = None
) -> Trained:
    """The task and data module of a training checkpoint (``data_dir`` overrides the recorded one;
    ``model``: model settings over the recorded ones, e.g. ``{"beam_width": 8}``: how the
    trained weights are read out, see :func:`model_settings`).

    Raises:
        LoadError: ``[load]`` naming the file (and the settings, when they do not fit it).
    """
    path = Path(path)
    if not path.is_file():
        raise LoadError(f"[load] {path}: checkpoint not found")
    model = model or {}
    try:
        data = path.read_bytes()  # read once: the task and the data settings both come from it
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)  # plain values
    except Exception as err:
        raise LoadError(f"[load] {path}: not a loadable aslfs_pl checkpoint ({err})") from err
    try:
        task = Seq2SeqTask.load_from_checkpoint(io.BytesIO(data), map_location="cpu", **model)
    except Exception as err:
        if model:  # a refused value, or a setting that changes the shape of the network
            flags = " ".join(f"--model.{k} {v!r}" for k, v in model.items())
            cause = " ".join(str(err).split())
            cause = cause if len(cause) < 300 else cause[:300] + " ..."
            raise LoadError(f"[load] {path} with {flags}: {cause}") from err
        raise LoadError(f"[load] {path}: not a loadable aslfs_pl checkpoint ({err})") from err
    if "datamodule_hyper_parameters" not in ckpt:
        raise LoadError(f"[load] {path}: records no data module settings (landmarks, split)")
    hparams = dict(ckpt["datamodule_hyper_parameters"])
    if data_dir is not None:
        hparams["data_dir"] = data_dir
    try:
        datamodule = KaggleDataModule.from_hparams(hparams)
    except (TypeError, ValueError) as err:
        raise LoadError(f"[load] {path}: its data module settings do not load ({err})") from err
    if datamodule.num_columns != task.net.config.num_columns:
        raise LoadError(
            f"[load] {path}: the recorded landmark set has {datamodule.num_columns} columns, "
            f"the model reads {task.net.config.num_columns}"
        )
    task.eval()
    return Trained(task, datamodule, ckpt.get("val_scores"))


def model_settings(args: list[str]) -> dict[str, object]:
    """``--model.NAME VALUE`` (or ``=VALUE``) arguments -> ``{NAME: value}``: the settings the
    commands that read a checkpoint take over its recorded ones, its read-out
    (:data:`~aslfs_pl.model.config.READ_OUT`: the decoding, the beam width, the fallback rules),
    each value typed as its field.

    Raises:
        ValueError: naming the first argument that is not a read-out setting or whose value
            does not parse.
    """
    types = typing.get_type_hints(ModelConfig) | {"decoding": str}
    settings: dict[str, object] = {}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        flag, has_value, value = arg.partition("=")
        name = flag.removeprefix("--model.")
        if not flag.startswith("--model.") or name not in READ_OUT:
            raise ValueError(
                f"{arg} (over a checkpoint only its read-out settings: "
                f"{', '.join(f'--model.{n}' for n in READ_OUT)})"
            )
        if not has_value:
            if not rest or rest[0].startswith("--"):
                raise ValueError(f"{flag} needs a value")
            value = rest.pop(0)
        kind = types[name]  # str, int or float
        try:
            settings[name] = kind(value)
        except ValueError:
            raise ValueError(f"{flag} {value!r}: expected {kind.__name__}") from None
    return settings


def _settings_or_usage(parser: argparse.ArgumentParser, rest: list[str], context: str) -> dict:
    """:func:`model_settings` of ``rest``; anything else is an error of ``parser`` (usage and
    exit status 2)."""
    try:
        return model_settings(rest)
    except ValueError as err:
        parser.error(f"unrecognised arguments{context}: {err}")


def parse_with_model_settings(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[argparse.Namespace, dict[str, object]]:
    """``parser``'s arguments (it has ``--ckpt``) and the ``--model.*`` settings after them
    (:func:`model_settings`), which need ``--ckpt``; anything else is an error of ``parser``."""
    args, rest = parser.parse_known_args(argv)
    settings = _settings_or_usage(parser, rest, "")
    if settings and not args.ckpt:
        parser.error("--model.* settings read a checkpoint: give --ckpt")
    return args, settings


def from_arguments(
    parser: argparse.ArgumentParser,
    ckpt: str | list[str] | None,
    rest: list[str],
    members: int = 1,
) -> Trained:
    """The network of checkpoint ``ckpt`` with the ``--model.*`` settings of ``rest`` over its
    own, or without a checkpoint, of the training CLI arguments ``rest`` (:func:`from_config`):
    what the commands that convert a network read. Several checkpoints, or ``members`` > 1
    randomly initialised networks of one config (seeded 0, 1, ...), are read as one ensemble
    (:func:`ensemble_of`). A usage error exits through ``parser``.

    Raises:
        LoadError: as :func:`load_checkpoint`, :func:`from_config` and :func:`ensemble_of`.
    """
    ckpts = [ckpt] if isinstance(ckpt, str) else list(ckpt or [])
    if ckpts:
        if members > 1:
            parser.error("--members builds networks from a config: with --ckpt, give each one")
        settings = _settings_or_usage(parser, rest, " with --ckpt")
        loaded = [load_checkpoint(path, model=settings) for path in ckpts]
        return loaded[0] if len(loaded) == 1 else ensemble_of(loaded, ckpts)
    if not rest:
        parser.error("give --ckpt, or training CLI arguments (--config FILE, --model.* ...)")
    if members == 1:
        return from_config(rest)
    built = [from_config([*rest, "--seed_everything", str(seed)]) for seed in range(members)]
    return ensemble_of(built, [f"seed {seed}" for seed in range(members)])


def ensemble_of(trained: list[Trained], names: list[str]) -> Trained:
    """``trained`` networks (``names``: where each came from) read as one
    (:class:`~aslfs_pl.model.ensemble.Ensemble`).

    Raises:
        LoadError: ``[ensemble]`` naming the member whose landmark columns or settings differ
            from the first's.
    """
    columns = trained[0].landmarks.selected_columns
    for name, member in zip(names[1:], trained[1:], strict=True):
        if member.landmarks.selected_columns != columns:
            raise LoadError(f"[ensemble] {name}: reads other landmark columns than {names[0]}")
    try:
        net = Ensemble([member.net for member in trained])
    except ValueError as err:
        raise LoadError(f"[ensemble] {err} ({', '.join(names)})") from err
    return Trained(trained[0].task, trained[0].datamodule, ensemble=net)


# What a config is read for here is the model and the data settings; the trainer it would build
# is forced onto the CPU, without logger, so that a TPU or GPU config (configs/tpu.yaml) loads too.
_BUILD_ONLY = [
    "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.num_nodes", "1",
    "--trainer.precision", "32-true", "--trainer.logger", "false",
]  # fmt: skip


def from_config(args: list[str]) -> Trained:
    """A randomly initialised network from training CLI arguments, e.g.
    ``["--config", "configs/seed.yaml", "--model.dim", "192"]`` (seeded as training seeds it).

    Raises:
        LoadError: ``[config]`` when a setting is rejected (a wrong flag makes the CLI print
            its usage and exit, as fit.py does).
    """
    from aslfs_pl import cli

    try:
        parsed = cli.main(["fit", *args, *_BUILD_ONLY], run=False)
    except (TypeError, ValueError) as err:
        raise LoadError(f"[config] {err}") from err
    return Trained(parsed.model.cpu().eval(), parsed.datamodule)


#: What ``--decoding`` takes besides a registered decoding: the one the checkpoint scored best.
BEST = "best"


def choose_decoding(trained: Trained, requested: str | None) -> tuple[str, str]:
    """The read-out to ship for ``trained`` and why, in words.

    ``requested`` names a decoding (taken as it is), ``best`` (the decoding with the best
    held-out score the checkpoint logged at its epoch, among those this network can run; a tie
    goes to ``model.decoding``, then to the registry's order), or None: ``best`` when the checkpoint logged more than one decoding's
    score, else ``model.decoding``.

    Raises:
        LoadError: ``best`` asked of a network whose checkpoint logged no decoding's score.
    """
    if requested not in (None, BEST):
        return requested, "asked for"
    logged = (trained.val_scores or {}).get("scores", {})
    runnable = {d: s for d, s in logged.items() if d in usable(trained.net)}
    if requested is None and len(runnable) < 2:
        return trained.decoding, "the checkpoint's model.decoding"
    if not runnable:
        raise LoadError(
            "[load] --decoding best: the checkpoint logged no held-out score per decoding "
            "(a checkpoint of this version records them at each validation)"
        )
    names = list(DECODINGS)
    order = sorted(runnable, key=lambda d: (-runnable[d], d != trained.decoding, names.index(d)))
    ranked = ", ".join(f"{d} {runnable[d]:.4f}" for d in order)
    epoch = trained.val_scores.get("epoch")
    return order[0], f"the best held-out score of the checkpoint (epoch {epoch}): {ranked}"
