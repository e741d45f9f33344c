"""The LightningModule: model settings pass through to ModelConfig, checkpoints, decoding checks."""

from __future__ import annotations

from dataclasses import dataclass

import lightning
import pytest
import torch

from aslfs_pl import cli, task
from aslfs_pl.model.config import ModelConfig
from aslfs_pl.task import Seq2SeqTask
from tests.test_cli import TINY

SMALL = dict(
    dim=32, heads=2, mlp_ratio=2, conv_blocks=1, conv_kernel=5, encoder_blocks=1,
    local_layers=1, window=4, decoder_blocks=1, max_frames=24, max_target_len=8,
)  # fmt: skip


@dataclass
class ProbeConfig(ModelConfig):
    """ModelConfig with one more field, as a contributor would add it."""

    probe_width: int = 3
    """A new setting that exists only in this test."""


def test_a_new_model_field_reaches_the_network_and_the_cli_help_without_touching_the_task(
    monkeypatch, capsys, tmp_path
):
    monkeypatch.setattr(task, "ModelConfig", ProbeConfig)  # the field added to the config only
    with pytest.raises(SystemExit):
        cli.main(["fit", "--config", TINY, "--help"])
    help_text = capsys.readouterr().out
    assert "--model.probe_width PROBE_WIDTH" in help_text
    assert "A new setting that exists only in this test." in help_text  # its docstring
    assert "--model.dim DIM       Model width." in help_text  # every field's docstring
    args = ["fit", "--config", TINY, "--model.probe_width", "7", "--model.dim", "48"]
    args += ["--data.data_dir", str(tmp_path), "--trainer.logger", "false"]
    parsed = cli.main(args, run=False)
    assert parsed.model.net.config.probe_width == 7 and parsed.model.net.config.dim == 48
    assert parsed.model.hparams.probe_width == 7  # recorded in checkpoints
    assert parsed.model.net.config.max_frames == 32  # still linked from data.max_frames


def test_ctc_head_is_derived_from_ctc_weight_and_is_not_a_flag(tmp_path, capsys):
    assert Seq2SeqTask(**SMALL, ctc_weight=0.5).net.ctc is not None
    assert Seq2SeqTask(**SMALL).net.ctc is None
    with pytest.raises(ValueError, match="model.ctc_head is set by model.ctc_weight"):
        Seq2SeqTask(**SMALL, ctc_head=True)
    with pytest.raises(SystemExit):
        cli.main(["fit", "--config", TINY, "--model.ctc_head", "true"], run=False)
    assert "ctc_head" in capsys.readouterr().err


def test_a_checkpoint_with_flat_hyperparameters_loads(tmp_path):
    """Checkpoints record the model settings flat (``hparams.dim``), as they always have."""
    torch.manual_seed(0)
    made = Seq2SeqTask(**SMALL, ctc_weight=0.5, decoding="joint", lr=0.01)
    path = tmp_path / "flat.ckpt"
    hparams = dict(made.hparams)
    assert hparams["dim"] == 32 and hparams["decoding"] == "joint" and "net" not in hparams
    torch.save(
        {
            "state_dict": made.state_dict(),
            "hyper_parameters": hparams,
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    loaded = Seq2SeqTask.load_from_checkpoint(path)
    assert loaded.config == made.config and loaded.hparams.lr == 0.01
    for (name, a), b in zip(made.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_settings_the_task_refuses_name_themselves():
    with pytest.raises(ValueError, match="model.decoding = 'beam': decoding 'beam': choose one"):
        Seq2SeqTask(**SMALL, decoding="beam")
    with pytest.raises(ValueError, match="model.decoding = 'joint': joint decoding needs the CTC"):
        Seq2SeqTask(**SMALL, decoding="joint")
    with pytest.raises(ValueError, match="model.check_finite"):
        Seq2SeqTask(**SMALL, check_finite="sometimes")
    with pytest.raises(ValueError, match="model.dim 33 is not divisible by model.heads 2"):
        Seq2SeqTask(**SMALL | {"dim": 33})
    with pytest.raises(ValueError, match="model.dropout_start"):
        Seq2SeqTask(**SMALL, dropout_start=1.0)
    with pytest.raises(ValueError, match="model.awp_start"):
        Seq2SeqTask(**SMALL, awp_start=2.0)


def test_validation_scores_every_decoding_the_network_can_run():
    plain = Seq2SeqTask(**SMALL)
    assert not hasattr(plain, "val_scores")  # attention only: val/score is its score
    joint = Seq2SeqTask(**SMALL, ctc_weight=0.5)
    assert list(joint.val_scores) == ["attention", "ctc", "joint"]
    assert list(joint.test_scores) == ["attention", "ctc", "joint"]
