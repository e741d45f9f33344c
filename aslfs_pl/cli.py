"""LightningCLI entry point: ``python scripts/fit.py [--accelerator tpu] [--config x.yaml] ...``.

Every setting is overridable: ``--model.*`` (the task and network), ``--data.*`` (the data
module), ``--trainer.*`` and ``--config FILE``. Values defined by the data are linked so they are
set once: ``data.max_frames`` -> ``model.max_frames``, ``data.max_target_len`` ->
``model.max_target_len``; the column count, axes and vocabulary size come from the instantiated
data module.

``--accelerator X`` is a shortcut for ``--trainer.accelerator X``; ``tpu`` also takes every core
(``--trainer.devices auto``: 8 on a v3-8) and ``--trainer.precision bf16-true``. The shortcut's
values go first, so a ``--config`` or ``--trainer.*`` given anywhere overrides them.
"""

from __future__ import annotations

import sys

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from aslfs_pl.data.datamodule import KaggleDataModule
from aslfs_pl.task import Seq2SeqTask

SUBCOMMANDS = ("fit", "validate", "test", "predict")
ACCELERATOR_DEFAULTS = {
    "tpu": ["--trainer.devices", "auto", "--trainer.precision", "bf16-true"],
}


class ASLCLI(LightningCLI):
    """LightningCLI with the project's argument links."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.max_frames", "model.max_frames")
        parser.link_arguments("data.max_target_len", "model.max_target_len")
        for src, dst in (
            ("data.num_columns", "model.num_columns"),
            ("data.num_axes", "model.num_axes"),
            ("data.vocab_size", "model.vocab_size"),
        ):
            parser.link_arguments(src, dst, apply_on="instantiate")


def expand_shortcuts(args: list[str]) -> list[str]:
    """Default the subcommand to ``fit`` and turn ``--accelerator X`` into trainer settings."""
    args = list(args)
    if not args or args[0] not in SUBCOMMANDS:
        args.insert(0, "fit")
    front: list[str] = []
    rest: list[str] = []
    i = 1
    while i < len(args):
        a = args[i]
        if a == "--accelerator" or a.startswith("--accelerator="):
            if "=" in a:
                value = a.split("=", 1)[1]
            elif i + 1 < len(args):
                value = args[i + 1]
                i += 1
            else:
                raise SystemExit("--accelerator needs a value (cpu, gpu, tpu, auto, ...)")
            front = ["--trainer.accelerator", value, *ACCELERATOR_DEFAULTS.get(value, [])]
        else:
            rest.append(a)
        i += 1
    return [args[0], *front, *rest]


def trainer_defaults() -> dict:
    return {
        "max_epochs": 50,
        "gradient_clip_val": 1.0,
        "default_root_dir": "runs",
        "log_every_n_steps": 10,
        "callbacks": [
            ModelCheckpoint(
                monitor="val/acc",
                mode="max",
                save_last=True,
                filename="best-{epoch:03d}-{step}",
                auto_insert_metric_name=False,
            ),
            LearningRateMonitor(logging_interval="epoch"),
        ],  # fmt: skip
    }


def main(args: list[str] | None = None, run: bool = True, **kwargs) -> ASLCLI:
    """Run the CLI on ``args`` (``sys.argv[1:]`` when None); tests pass a list."""
    if args is None:  # LightningCLI warns when given args while sys.argv also holds some
        args, sys.argv = sys.argv[1:], sys.argv[:1]
    args = expand_shortcuts(args)
    if not run:
        args = args[1:]
    defaults = trainer_defaults() | kwargs.pop("trainer_defaults", {})
    return ASLCLI(
        Seq2SeqTask,
        KaggleDataModule,
        args=args,
        run=run,
        trainer_defaults=defaults,
        seed_everything_default=42,
        save_config_kwargs={"overwrite": True},
        **kwargs,
    )
