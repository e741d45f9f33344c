"""LightningCLI entry point: ``python scripts/fit.py [--accelerator tpu] [--config x.yaml] ...``.

Every setting is overridable: ``--model.*`` (the task and network), ``--data.*`` (the data
module), ``--trainer.*`` and ``--config FILE``. Values defined by the data are linked so they are
set once: ``data.max_frames`` -> ``model.max_frames``, ``data.max_target_len`` ->
``model.max_target_len``; the column count, axes and vocabulary size come from the instantiated
data module.

``--accelerator X`` is a shortcut for ``--trainer.accelerator X``; ``tpu`` also takes every core
(``--trainer.devices auto``: 8 on a v3-8), SPMD data parallel over them (``--trainer.strategy
spmd``, :mod:`aslfs_pl.spmd`; ``--trainer.strategy xla`` is Lightning's one process per core) and
``--trainer.precision 32-true``. ``--xla_cpu_devices N`` rehearses that route on N XLA CPU
devices of any machine. Not bf16-true:
Lightning's XLA precisions are 32-true, 16-true and bf16-true (no mixed one), and bf16-true keeps
the weights and the optimiser state in bf16, where updates smaller than ~0.4% of a weight are
rounded away (measured on the CPU, quickstart-size model: loss 3.13 vs fp32's 2.51 after 504
steps; tests/test_precision.py). In 32-true the TPU still multiplies matrices in bf16 passes
(torch-xla's default matmul precision) while weights and updates stay fp32. The shortcut's
values go first, so a ``--config`` or ``--trainer.*`` given anywhere overrides them.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import jsonargparse
import torch
import yaml
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from aslfs_pl import spmd  # noqa: F401  (registers --trainer.strategy spmd)
from aslfs_pl.callbacks import AtomicModelCheckpoint, PhraseWriter, RunReport
from aslfs_pl.data.datamodule import KaggleDataModule
from aslfs_pl.data.kaggle import DataError
from aslfs_pl.finite import NonFiniteLossError
from aslfs_pl.model.config import NETWORK, READ_OUT, legacy_hint, upgrade_settings
from aslfs_pl.task import Seq2SeqTask
from aslfs_pl.terminal import quiet_logging

SUBCOMMANDS = ("fit", "validate", "test", "predict")
ACCELERATOR_DEFAULTS = {
    "tpu": [
        "--trainer.devices", "auto", "--trainer.precision", "32-true",
        "--trainer.strategy", "spmd",
    ],
}  # fmt: skip
# --xla_cpu_devices N: the TPU route rehearsed on N XLA CPU devices (aslfs_pl/spmd.py)
XLA_CPU_ACCELERATOR = '{"class_path": "aslfs_pl.spmd.XLACPUAccelerator"}'


class ASLCLI(LightningCLI):
    """LightningCLI with the project's argument links."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.max_frames", "model.max_frames")
        parser.link_arguments("data.max_target_len", "model.max_target_len")
        for src, dst in (
            ("data.num_columns", "model.num_columns"),
            ("data.num_axes", "model.num_axes"),
            ("data.hand_columns", "model.hand_columns"),
            ("data.vocab_size", "model.vocab_size"),
        ):
            parser.link_arguments(src, dst, apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        refuse_legacy_settings(args if isinstance(args, list) else [])
        super().parse_arguments(parser, args)
        self._model_flags = model_flags(args if isinstance(args, list) else [])

    def _parse_ckpt_path(self) -> None:
        """Lightning puts a checkpoint's model settings (``--ckpt_path``) over the whole config,
        the command line's ``--model.*`` flags included. Here those flags win: ``validate
        --ckpt_path C --model.beam_width 8`` validates C with 8 beams. A flag that changes the
        network the weights belong to (:data:`aslfs_pl.model.config.NETWORK`: sizes, families,
        positions) is refused, naming it."""
        sub = self.config.get("subcommand")
        given = {k: self.config[f"{sub}.model.{k}"] for k in self._model_flags} if sub else {}
        self._read_checkpoint_settings()
        undone = {k: v for k, v in given.items() if self.config[f"{sub}.model.{k}"] != v}
        changed = [k for k in undone if k in NETWORK]
        if changed:
            k = changed[0]
            raise ValueError(
                f"--model.{k} {undone[k]}: the checkpoint {self.config[f'{sub}.ckpt_path']} holds "
                f"a network with {k} {self.config[f'{sub}.model.{k}']}; over a checkpoint only "
                f"its read-out ({', '.join(READ_OUT)}) and the training-only settings change"
            )
        if undone:
            self.config = self.parser.parse_object({sub: {"model": undone}}, self.config)

    def _read_checkpoint_settings(self) -> None:
        """Lightning's reading of ``--ckpt_path``'s model settings into the config, with the
        settings of an older version in today's form first
        (:func:`~aslfs_pl.model.config.upgrade_settings`)."""
        sub = self.config.get("subcommand")
        path = self.config[sub].get("ckpt_path") if sub else None
        if not path or not Path(path).is_file():
            return
        hparams = torch.load(path, weights_only=True, map_location="cpu").get("hyper_parameters")
        if hparams:
            hparams = upgrade_settings({k: v for k, v in hparams.items() if k != "_instantiator"})
            self.config = self.parser.parse_object({sub: {"model": hparams}}, self.config)

    def instantiate_trainer(self, **kwargs):
        config = self._get(self.config_init, "trainer", default={})
        if config.get("logger") in (None, True):  # the Trainer builds no default logger of its own
            kwargs["logger"] = default_loggers(config.get("default_root_dir") or os.getcwd())
        if config.get("accelerator") in ("cpu", "gpu", "cuda", "mps"):
            # Lightning's device report imports torch-xla, which would pick a device of its own
            # (and say so) for a run that asked for none
            os.environ.setdefault("PJRT_SELECT_DEFAULT_DEVICE", "0")
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        # Checkpoints go to <default_root_dir>/checkpoints rather than the logger's version_N
        # folder (new for every run), so ``--ckpt_path last`` finds the previous run's last.ckpt.
        # It has to be set before fit() resolves "last", i.e. before the callbacks' setup().
        for cb in self.trainer.checkpoint_callbacks:
            if cb.dirpath is None:
                cb.dirpath = os.path.realpath(
                    os.path.join(self.trainer.default_root_dir, "checkpoints")
                )


def model_flags(args: list[str]) -> list[str]:
    """The model settings a command line sets with ``--model.X[.Y] value`` or ``=value``: their
    top-level names X, in order."""
    names = [a.split("=", 1)[0].split(".")[1] for a in args if a.startswith("--model.")]
    return list(dict.fromkeys(names))


def refuse_legacy_settings(args: list[str]) -> None:
    """Exit with one line saying how to write a flat model setting of an older version (given as
    ``--model.X`` or in a ``--config`` file) that is a stem's or an encoder family's own setting
    now (:func:`~aslfs_pl.model.config.legacy_hint`)."""
    names = model_flags(args)
    configs = [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    configs += [b for a, b in zip(args, args[1:], strict=False) if a == "--config"]
    for path in configs:
        try:
            model = (yaml.safe_load(Path(path).read_text()) or {}).get("model") or {}
        except (OSError, yaml.YAMLError, AttributeError):
            continue  # the parser reports it
        names += [k for k in model if isinstance(model, dict)]
    for name in names:
        hint = legacy_hint(name)
        if hint:
            raise SystemExit(f"{hint} (docs/architecture.md lists each part's settings)")


def default_loggers(root_dir: str) -> list:
    """Lightning's default logger is TensorBoard when it happens to be installed, else CSV with a
    warning. Here: CSV always (``metrics.csv``, what ``plot_curves.py`` reads), plus TensorBoard
    in the same ``lightning_logs/version_N`` folder when installed
    (``pip install -e ".[tensorboard]"``, then ``tensorboard --logdir <root_dir>``). A logger
    given with ``--trainer.logger`` (or ``false``) replaces these."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from lightning.pytorch.loggers.tensorboard import _TENSORBOARD_AVAILABLE

    csv = CSVLogger(root_dir, name="lightning_logs")
    if not _TENSORBOARD_AVAILABLE:
        return [csv]
    return [csv, TensorBoardLogger(root_dir, name="lightning_logs", version=csv.version)]


def expand_shortcuts(args: list[str]) -> list[str]:
    """Default the subcommand to ``fit``; turn ``--accelerator X`` into trainer settings placed
    first (a config or a ``--trainer.*`` setting given anywhere overrides them), and
    ``--xla_cpu_devices N`` into ones placed after the last ``--config`` (the rehearsal runs the
    configs as they would run on a TPU, whatever accelerator they name; a ``--trainer.*``
    setting given after them still wins)."""
    args = list(args)
    if not args or args[0] not in SUBCOMMANDS:
        args.insert(0, "fit")
    front: list[str] = []
    rest: list[str] = []
    back: list[str] = []
    i = 1
    while i < len(args):
        name, value, i = _shortcut(args, i)
        if name == "--accelerator":
            front = ["--trainer.accelerator", value, *ACCELERATOR_DEFAULTS.get(value, [])]
        elif name == "--xla_cpu_devices":
            back = [
                "--trainer.accelerator", XLA_CPU_ACCELERATOR, "--trainer.strategy", "spmd",
                "--trainer.devices", str(_device_count(value)), "--trainer.precision", "32-true",
            ]  # fmt: skip
        else:
            rest.append(value)
    configs = [k for k, a in enumerate(rest) if a == "--config" or a.startswith("--config=")]
    after = 0 if not configs else configs[-1] + (1 if "=" in rest[configs[-1]] else 2)
    return [args[0], *front, *rest[:after], *back, *rest[after:]]


def _shortcut(args: list[str], i: int) -> tuple[str | None, str, int]:
    """(shortcut name or None, its value or the argument itself, next index) at ``args[i]``."""
    a = args[i]
    for name in ("--accelerator", "--xla_cpu_devices"):
        if a.startswith(name + "="):
            return name, a.split("=", 1)[1], i + 1
        if a == name:
            if i + 1 >= len(args):
                raise SystemExit(f"{name} needs a value")
            return name, args[i + 1], i + 2
    return None, a, i + 1


def _device_count(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"--xla_cpu_devices {value}: a device count (1, 2, ... 8)")
    return int(value)


def use_xla_cpu_devices(args: list[str]) -> None:
    """For ``--xla_cpu_devices N``: torch-xla's CPU devices, N of them, set up before anything
    starts the XLA runtime (the SPMD strategy starts it).

    Raises:
        ValueError: when PJRT_DEVICE names another device, or the runtime already runs here with
            another count.
    """
    n = None
    i = 0
    while i < len(args):
        name, value, i = _shortcut(args, i)
        if name == "--xla_cpu_devices":
            n = _device_count(value)
    if n is None:
        return
    if os.environ.get("PJRT_DEVICE", "CPU") != "CPU":
        raise ValueError(
            f"--xla_cpu_devices {n} rehearses on the CPU, but PJRT_DEVICE is "
            f"{os.environ['PJRT_DEVICE']}: unset it"
        )
    if "torch_xla" in sys.modules and os.environ.get("CPU_NUM_DEVICES", "1") != str(n):
        import torch_xla

        if torch_xla._XLAC._xla_runtime_is_initialized():
            raise ValueError(
                f"--xla_cpu_devices {n}: the XLA runtime already runs in this process with "
                f"{os.environ.get('CPU_NUM_DEVICES', '1')} device(s); start a new process"
            )
    os.environ["PJRT_DEVICE"] = "CPU"
    os.environ["CPU_NUM_DEVICES"] = str(n)


def trainer_defaults() -> dict:
    return {
        "max_epochs": 50,
        "gradient_clip_val": 1.0,
        "default_root_dir": "runs",
        "log_every_n_steps": 10,
        # The training stream's order depends on the epoch; a fresh DataLoader iterator per epoch
        # (created after a resume has restored the loop) is what makes resumed order exact.
        "reload_dataloaders_every_n_epochs": 1,
        "callbacks": [
            # Best by validation masked accuracy (as the seed), and last.ckpt after every epoch:
            # a monitored checkpoint's save_last only refreshes when the best one improves.
            AtomicModelCheckpoint(
                monitor="val/acc",
                mode="max",
                save_top_k=1,
                filename="best-{epoch:03d}-{step}",
                auto_insert_metric_name=False,
            ),
            AtomicModelCheckpoint(monitor=None, save_top_k=1, filename="last"),
            LearningRateMonitor(logging_interval="step"),  # the warm-up is visible
            PhraseWriter(),  # fit.py predict -> <default_root_dir>/predictions.csv
            RunReport(),  # what is trained on what; where the results went
        ],
        # its FLOPs column needs an example input, its metric rows are noise: RunReport says
        # the size instead (--trainer.enable_model_summary true shows the table)
        "enable_model_summary": False,
    }


def main(args: list[str] | None = None, run: bool = True, **kwargs) -> ASLCLI:
    """Run the CLI on ``args`` (``sys.argv[1:]`` when None); tests pass a list."""
    args = sys.argv[1:] if args is None else list(args)
    use_xla_cpu_devices(args)
    args = expand_shortcuts(args)
    # --help shows each model setting's docstring, written under its field in ModelConfig
    jsonargparse.set_parsing_settings(docstring_parse_attribute_docstrings=True)
    if not run:
        args = args[1:]
    extra = dict(kwargs.pop("trainer_defaults", {}))
    defaults = trainer_defaults()
    defaults["callbacks"] += extra.pop("callbacks", [])
    defaults |= extra
    with warnings.catch_warnings():
        # The args are sys.argv's, rewritten by expand_shortcuts; sys.argv itself stays intact
        # because Lightning's DDP launcher re-runs it for the other ranks.
        warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended")
        # Lightning warns of any IterableDataset with a length; the stream's is exact: every
        # worker of every replica reads its own shard (aslfs_pl/data/stream.py)
        warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")
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


def run(args: list[str] | None = None) -> None:
    """The command line (``scripts/fit.py``, ``aslfs-fit``): :func:`main`, with bad data or a
    rejected setting reported in one line (exit status 1); ``ASLFS_DEBUG=1`` shows the
    traceback instead."""
    args = sys.argv[1:] if args is None else list(args)
    subcommand = args[0] if args and args[0] in SUBCOMMANDS else "fit"
    quiet_logging()
    try:
        main(args)
    except (DataError, NonFiniteLossError, ValueError) as err:
        if os.environ.get("ASLFS_DEBUG"):
            raise
        sys.exit(
            f"{subcommand} failed: {type(err).__name__}: {err} (ASLFS_DEBUG=1 shows the traceback)"
        )


if __name__ == "__main__":  # python -m aslfs_pl.cli, what the quality benchmarks run
    run()
