"""aslfs-export: a checkpoint or a config's network as a checked submission."""

from __future__ import annotations

import pytest
import torch

from aslfs_pl.commands import export_tflite
from aslfs_pl.deploy.parity import parity_report
from aslfs_pl.trained import from_arguments, from_config
from tests.helpers import TINY


@pytest.mark.slow
def test_export_script_takes_stacked_configs_and_overrides(tmp_path, capsys):
    override = ["--config", TINY, "--model.dim", "48", "--data.max_frames", "24"]
    net = from_config(override).net
    assert net.config.dim == 48 and net.config.max_frames == 24
    export_tflite.main([*override, "--out", str(tmp_path), "--no_check"])
    shown = capsys.readouterr().out
    assert f"model: {net.num_parameters() / 1e6:.2f}M parameters" in shown
    assert (tmp_path / "submission.zip").is_file()
    # the dim-48 network is what the file computes
    report = parity_report(net, tmp_path / "model.tflite", "fp16", lengths=(0, 5, 30))
    assert report.ok, report.summary()


def test_export_script_refuses_ckpt_with_config_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_tflite.main(["--ckpt", "x.ckpt", "--no-check", "--out", str(tmp_path)])
    assert "unrecognised arguments with --ckpt: --no-check" in capsys.readouterr().err
    # model settings read the checkpoint another way; anything else is refused before loading
    with pytest.raises(SystemExit):
        export_tflite.main(["--ckpt", "x.ckpt", "--model.beam_width", "--out", str(tmp_path)])
    assert "with --ckpt: --model.beam_width needs a value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export_tflite.main(
            ["--ckpt", "x.ckpt", "--model.beam_width", "4", "--data.x", "1", "--out", "o"]
        )
    assert "with --ckpt: --data.x (over a checkpoint only its read-out" in capsys.readouterr().err


def test_export_script_needs_a_checkpoint_or_a_config(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_tflite.main(["--out", str(tmp_path)])
    assert "give --ckpt, or training CLI arguments" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export_tflite.main(["--ckpt", "a.ckpt", "--fp32", "--int8", "--out", str(tmp_path)])
    assert "not allowed with argument" in capsys.readouterr().err  # one weight type


@pytest.mark.slow
def test_export_script_writes_seeds_as_one_ensemble_file_and_checks_it(tmp_path, capsys):
    config = ["--config", TINY, "--model.ctc_weight", "0.5"]
    # the parity check runs inside (every length up to 1000 frames; the joint_step route: both
    # networks' decoder steps and CTC heads, the per-step CTC prefix scores over max_frames);
    # a failure exits with status 1
    export_tflite.main(
        [*config, "--members", "2", "--decoding", "joint_step", "--out", str(tmp_path)]
    )
    shown = capsys.readouterr().out
    assert "(2 networks)" in shown and "parity: OK" in shown
    both = from_arguments(export_tflite.parser(), None, config, members=2).net
    first = from_config([*config, "--seed_everything", "0"]).net
    assert both.num_parameters() == 2 * first.num_parameters()
    assert torch.equal(both.members[0].decoder.head.weight, first.decoder.head.weight)
    assert not torch.equal(both.members[1].decoder.head.weight, first.decoder.head.weight)
    with pytest.raises(SystemExit):
        export_tflite.main(["--ckpt", "a.ckpt", "--members", "2", "--out", str(tmp_path)])
    assert "with --ckpt, give each one" in capsys.readouterr().err


def test_a_model_file_over_kaggles_limit_is_refused_by_name():
    assert export_tflite.over_the_limit("m.tflite", 40 * 2**20) is None
    why = export_tflite.over_the_limit("m.tflite", 43_000_000)
    assert why == (
        "m.tflite is 41.0 MiB, over Kaggle's 40 MB (40 MiB) model limit: fewer networks, a "
        "smaller network, or --int8"
    )
