"""A network with its data settings, from a checkpoint or from a config, and the errors that name
the file or the setting."""

from __future__ import annotations

import lightning
import pytest
import torch

from aslfs_pl.data.datamodule import KaggleDataModule
from aslfs_pl.task import Seq2SeqTask
from aslfs_pl.trained import LoadError, from_config, load_checkpoint, model_settings
from tests.helpers import ROOT, TINY, TINY_TASK


def save_checkpoint(path, task: Seq2SeqTask, datamodule: dict | None) -> None:
    """What Lightning writes for a run, without a run: the task's weights and hyperparameters,
    and the data module's (``datamodule``, left out when None)."""
    ckpt = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    if datamodule is not None:
        ckpt["datamodule_hyper_parameters"] = datamodule
    torch.save(ckpt, path)


def test_a_checkpoint_gives_its_network_and_data_module(tmp_path):
    torch.manual_seed(0)
    saved = Seq2SeqTask(**TINY_TASK, ctc_weight=0.5, decoding="ctc")
    data = KaggleDataModule(
        data_dir=str(tmp_path / "recorded"), max_frames=24, val_fraction=0.3, seed=5
    )
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, saved, dict(data.hparams))
    trained = load_checkpoint(path)
    assert not trained.task.training and trained.net is trained.task.net
    assert all(p.device.type == "cpu" for p in trained.task.parameters())
    for (name, a), b in zip(
        saved.state_dict().items(), trained.task.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert trained.decoding == "ctc"
    dm = trained.datamodule
    assert (dm.data_dir, dm.max_frames, dm.val_fraction, dm.seed) == (
        str(tmp_path / "recorded"),
        24,
        0.3,
        5,
    )
    assert trained.landmarks.selected_columns == data.landmarks.selected_columns
    elsewhere = load_checkpoint(path, data_dir=str(tmp_path / "moved")).datamodule
    assert elsewhere.data_dir == str(tmp_path / "moved") and elsewhere.seed == 5


def test_a_checkpoint_without_a_decoding_reads_with_attention(tmp_path):
    task = Seq2SeqTask(**TINY_TASK)
    hparams = dict(task.hparams)
    del hparams["decoding"]  # a checkpoint from before the setting existed
    path = tmp_path / "old.ckpt"
    torch.save(
        {
            "state_dict": task.state_dict(),
            "hyper_parameters": hparams,
            "pytorch-lightning_version": lightning.__version__,
            "datamodule_hyper_parameters": dict(KaggleDataModule(max_frames=24).hparams),
        },
        path,
    )
    assert load_checkpoint(path).decoding == "attention"


def test_bad_checkpoint_names_the_stage(tmp_path):
    with pytest.raises(LoadError, match=r"\[load\] .*missing.ckpt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"nope")
    with pytest.raises(LoadError, match=r"\[load\] .*bad.ckpt: not a loadable"):
        load_checkpoint(bad)


def test_a_checkpoint_whose_data_settings_do_not_fit_names_the_cause(tmp_path):
    task = Seq2SeqTask(**TINY_TASK)
    data = dict(KaggleDataModule(max_frames=24).hparams)
    cases = [
        ("none.ckpt", task, None, "records no data module settings"),
        ("bad.ckpt", task, data | {"val_by": "hand"}, "its data module settings do not load"),
        ("unknown.ckpt", task, data | {"colour": 1}, "its data module settings do not load"),
        (
            "columns.ckpt",
            Seq2SeqTask(**TINY_TASK, num_columns=12),
            data,
            "the recorded landmark set has 176 columns, the model reads 12",
        ),
    ]
    for name, made, recorded, complaint in cases:
        save_checkpoint(tmp_path / name, made, recorded)
        with pytest.raises(LoadError, match=rf"\[load\] .*{name}: {complaint}"):
            load_checkpoint(tmp_path / name)


def test_config_settings_rejected_by_the_model_name_the_setting():
    with pytest.raises(LoadError, match=r"\[config\] .*model.dim 33 is not divisible"):
        from_config(["--config", str(ROOT / "configs/tiny.yaml"), "--model.dim", "33"])
    # a TPU config loads on this CPU machine (only the model and data settings are read)
    built = from_config(
        ["--config", str(ROOT / "configs/tiny.yaml"), "--config", str(ROOT / "configs/tpu.yaml")]
    )
    assert built.net.config.dim == 32


def test_a_config_gives_a_seeded_network_and_its_data_module(capsys):
    args = ["--config", TINY, "--model.dim", "48", "--data.max_frames", "24"]
    built, again = from_config(args), from_config(args)
    assert not built.task.training
    assert built.net.config.dim == 48 and built.net.config.max_frames == 24  # linked from data
    assert built.datamodule.max_frames == 24 and built.datamodule.batch_size == 8
    assert built.decoding == "attention"
    for (name, a), b in zip(
        built.task.state_dict().items(), again.task.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name  # seeded as training seeds it (seed_everything: 0)
    with pytest.raises(SystemExit):  # an unknown flag: the CLI's usage message, as fit.py
        from_config(["--config", TINY, "--model.width", "48"])
    assert "model.width" in capsys.readouterr().err


def test_read_out_settings_replace_the_checkpoints_and_others_are_refused(tmp_path):
    saved = Seq2SeqTask(**TINY_TASK, ctc_weight=0.5, decoding="beam", beam_width=3)
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, saved, dict(KaggleDataModule(max_frames=24).hparams))
    assert load_checkpoint(path).net.config.beam_width == 3
    args = ["--model.beam_width", "5", "--model.fallback_phrase=e a", "--model.decoding", "joint"]
    wider = model_settings(args)
    assert wider == {"beam_width": 5, "fallback_phrase": "e a", "decoding": "joint"}
    trained = load_checkpoint(path, model=wider)
    assert (trained.net.config.beam_width, trained.net.config.fallback_phrase) == (5, "e a")
    assert trained.decoding == "joint"
    for name, weight in saved.net.state_dict().items():  # the same weights, read another way
        assert torch.equal(weight, trained.net.state_dict()[name]), name
    with pytest.raises(LoadError, match=r"with --model.beam_width 0: model.beam_width 0 must"):
        load_checkpoint(path, model={"beam_width": 0})
    # settings of the network itself are refused, even those that change no weight's shape
    for args, complaint in [
        (["--model.decoder_rotary", "true"], r"--model.decoder_rotary \(over a checkpoint only"),
        (["--model.heads", "8"], r"--model.heads \(over a checkpoint only its read-out"),
        (["--data.max_frames", "8"], r"--data.max_frames \(over a checkpoint only"),
        (["--model.beam_width"], "--model.beam_width needs a value"),
        (["--model.fallback_phrase", "--model.beam_width", "8"], "fallback_phrase needs a value"),
        (["--model.beam_width", "four"], "--model.beam_width 'four': expected int"),
    ]:
        with pytest.raises(ValueError, match=complaint):
            model_settings(args)


def test_a_checkpoint_of_an_older_version_with_flat_part_settings_loads(tmp_path, synthetic_dir):
    torch.manual_seed(0)
    task = Seq2SeqTask(**TINY_TASK | {"encoder": "conformer", "encoder_conf": {"kernel": 3}})
    hparams = {k: v for k, v in task.hparams.items() if k not in ("stem_conf", "encoder_conf")}
    hparams |= {"conv_blocks": 1, "conv_kernel": 5, "block_kernel": 3, "window": 4}  # as saved
    path = tmp_path / "old.ckpt"
    datamodule = dict(KaggleDataModule(max_frames=24).hparams)
    save_checkpoint(path, task, datamodule)
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"] = hparams
    torch.save(ckpt, path)
    net = load_checkpoint(path).net
    assert net.config.encoder_settings.kernel == 3 and net.config.stem_settings.blocks == 1
    for (name, a), b in zip(task.net.state_dict().items(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # the training CLI reads it too (validate --ckpt_path), settings of today's form
    from aslfs_pl import cli

    validated = cli.main(
        ["validate", "--config", TINY, "--ckpt_path", str(path), "--trainer.logger", "false",
         "--data.data_dir", str(synthetic_dir), "--trainer.limit_val_batches", "1",
         "--trainer.enable_progress_bar", "false"],
    )  # fmt: skip
    assert validated.model.net.config.encoder_settings.kernel == 3
    # a flat setting on the command line or in a config stops the run in one line
    with pytest.raises(SystemExit, match="model.window is a part's own setting now: write "):
        cli.main(["fit", "--config", TINY, "--model.window", "8"], run=False)
    old_config = tmp_path / "old.yaml"
    old_config.write_text("model:\n  encoder: conformer\n  block_kernel: 15\n")
    with pytest.raises(SystemExit, match=r"model.encoder_conf.kernel \(model.encoder conformer"):
        cli.main(["fit", "--config", str(old_config)], run=False)


def test_the_export_ships_the_read_out_with_the_best_held_out_score(tmp_path):
    from types import SimpleNamespace

    from aslfs_pl.trained import choose_decoding

    task = Seq2SeqTask(**TINY_TASK, ctc_weight=0.5, decoding="attention")
    # what a checkpoint records at validation: every decoding's score of that epoch
    task._trainer = SimpleNamespace(
        current_epoch=3,
        callback_metrics={
            "val/score": torch.tensor(0.5),
            "val/score_attention": torch.tensor(0.5),
            "val/score_ctc": torch.tensor(0.25),
            "val/score_joint": torch.tensor(0.75),
            "val/score_beam": torch.tensor(0.75),
            "val/acc": torch.tensor(0.9),
        },
    )
    ckpt: dict = {}
    task.on_save_checkpoint(ckpt)
    assert ckpt["val_scores"]["scores"] == {
        "attention": 0.5,
        "ctc": 0.25,
        "joint": 0.75,
        "beam": 0.75,
    }
    task._trainer = None
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, task, dict(KaggleDataModule(max_frames=24).hparams))
    saved = torch.load(path, weights_only=True) | {"val_scores": ckpt["val_scores"]}
    torch.save(saved, path)
    trained = load_checkpoint(path)
    decoding, why = choose_decoding(trained, None)
    assert decoding == "joint"  # a tie goes to the registry's order (attention, ctc, joint, beam)
    assert why.startswith("the best held-out score of the checkpoint (epoch 3): ")
    assert why.endswith("joint 0.7500, beam 0.7500, attention 0.5000, ctc 0.2500")
    assert choose_decoding(trained, "ctc") == ("ctc", "asked for")
    # the checkpoint's own decoding wins a tie
    trained.task.hparams.decoding = "beam"
    assert choose_decoding(trained, "best")[0] == "beam"
    # without logged scores (a config, an older checkpoint): model.decoding, and best refused
    trained.val_scores = None
    assert choose_decoding(trained, None) == ("beam", "the checkpoint's model.decoding")
    with pytest.raises(LoadError, match="logged no held-out score per decoding"):
        choose_decoding(trained, "best")
