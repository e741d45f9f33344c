"""The LightningModule: model settings pass through to ModelConfig, checkpoints, the settings it
refuses, validation's scores, and the non-finite loss check."""

from __future__ import annotations

from dataclasses import dataclass

import lightning
import numpy as np
import pytest
import torch

from aslfs_pl import cli, task, vocab
from aslfs_pl.deploy.graph import export_twin
from aslfs_pl.finite import NonFiniteLossError
from aslfs_pl.model.backward import reverse_phrases
from aslfs_pl.model.config import ModelConfig
from aslfs_pl.model.layers import MaskedBatchNorm
from aslfs_pl.task import Seq2SeqTask
from tests.helpers import ENCODERS, TINY, TINY_TASK, PoisonWeights, tiny_args


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
    assert Seq2SeqTask(**TINY_TASK, ctc_weight=0.5).net.ctc is not None
    assert Seq2SeqTask(**TINY_TASK).net.ctc is None
    with pytest.raises(ValueError, match="model.ctc_head is set by model.ctc_weight"):
        Seq2SeqTask(**TINY_TASK, ctc_head=True)
    with pytest.raises(SystemExit):
        cli.main(["fit", "--config", TINY, "--model.ctc_head", "true"], run=False)
    assert "ctc_head" in capsys.readouterr().err


def test_a_checkpoint_with_flat_hyperparameters_loads(tmp_path):
    """Checkpoints record the model settings flat (``hparams.dim``), as they always have."""
    torch.manual_seed(0)
    made = Seq2SeqTask(**TINY_TASK, ctc_weight=0.5, decoding="joint", lr=0.01)
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
    with pytest.raises(
        ValueError, match="model.decoding = 'prefix': decoding 'prefix': choose one"
    ):
        Seq2SeqTask(**TINY_TASK, decoding="prefix")
    for name in ("ctc", "joint"):
        with pytest.raises(ValueError, match=f"model.decoding = '{name}': {name} decoding needs"):
            Seq2SeqTask(**TINY_TASK, decoding=name)
    Seq2SeqTask(**TINY_TASK, decoding="beam")  # without the head: the beam's best hypothesis
    with pytest.raises(ValueError, match="model.check_finite"):
        Seq2SeqTask(**TINY_TASK, check_finite="sometimes")
    with pytest.raises(ValueError, match="model.dim 33 is not divisible by model.heads 2"):
        Seq2SeqTask(**TINY_TASK | {"dim": 33})
    with pytest.raises(ValueError, match="model.dropout_start"):
        Seq2SeqTask(**TINY_TASK, dropout_start=1.0)
    with pytest.raises(ValueError, match="model.awp_start"):
        Seq2SeqTask(**TINY_TASK, awp_start=2.0)
    with pytest.raises(ValueError, match="model.token_noise = 1.0"):
        Seq2SeqTask(**TINY_TASK, token_noise=1.0)
    with pytest.raises(ValueError, match="model.token_noise_mode = 'drop'"):
        Seq2SeqTask(**TINY_TASK, token_noise_mode="drop")


def test_validation_scores_every_decoding_the_network_can_run():
    plain = Seq2SeqTask(**TINY_TASK)
    assert not hasattr(plain, "val_scores")  # no CTC head: val/score, the decoding's score
    joint = Seq2SeqTask(**TINY_TASK, ctc_weight=0.5)
    every = ["attention", "ctc", "joint", "beam", "joint_step"]
    assert list(joint.val_scores) == every and list(joint.test_scores) == every


@pytest.mark.slow  # up to three epochs of training each
@pytest.mark.parametrize(("mode", "step"), [("step", 3), ("epoch", 3), ("epoch", 17)])
def test_non_finite_loss_is_a_clear_error_naming_the_step(synthetic_dir, tmp_path, mode, step):
    """ "step" (the CPU/GPU default) stops at the bad step; "epoch" (the XLA default: no host
    sync per step) finds it at the end of that epoch, and names the same global step."""
    with pytest.raises(NonFiniteLossError, match=f"at global step {step} ") as err:
        cli.main(
            tiny_args(
                synthetic_dir, tmp_path, "--trainer.max_epochs", "3", "--model.check_finite", mode
            ),
            trainer_defaults={"callbacks": [PoisonWeights(step)]},
        )
    assert ("found at the end of epoch" in str(err.value)) == (mode == "epoch")


def test_ctc_decoding_without_the_head_is_a_clear_error(synthetic_dir, tmp_path):
    with pytest.raises(ValueError, match="model.decoding = 'ctc': ctc decoding needs the CTC head"):
        cli.main(
            tiny_args(synthetic_dir, tmp_path, "--model.decoding", "ctc", "--model.ctc_weight", "0")
        )


@pytest.mark.parametrize("encoder", ENCODERS)
def test_the_same_sequences_padded_to_128_or_384_frames_give_the_same_loss(encoder):
    """Length bucketing pads a batch to one of several lengths: the loss (cross-entropy and CTC),
    the masks and the batch norm statistics must not depend on which, in every encoder family."""
    torch.manual_seed(0)
    task = Seq2SeqTask(
        **TINY_TASK
        | {"max_frames": 384, "stem_conf": {"blocks": 2, "kernel": 5}}
        | ENCODERS[encoder],
        ctc_weight=0.5,
        dropout=0.0,
        num_columns=12,
    )
    rng = np.random.default_rng(0)
    lengths = [120, 37, 5]
    x = torch.full((3, 128, 12), float("nan"))
    for i, t in enumerate(lengths):
        x[i, :t] = torch.from_numpy(rng.uniform(0.2, 0.8, (t, 12)).astype(np.float32))
    long = torch.cat([x, torch.full((3, 256, 12), float("nan"))], 1)  # (3, 384, 12)
    tokens = torch.full((3, 9), vocab.PAD)
    for i, phrase in enumerate(["abcde", "ab", "x"]):
        ids = [vocab.SOS, *vocab.encode(phrase), vocab.EOS]
        tokens[i, : len(ids)] = torch.tensor(ids)
    for training in (False, True):  # eval; and training, where batch norm uses batch statistics
        task.train(training)
        for i in range(3):  # each sequence alone, and the whole batch
            one = {"tokens": tokens[i : i + 1]}
            short_loss = task._loss(one | {"landmarks": x[i : i + 1]})[0]
            long_loss = task._loss(one | {"landmarks": long[i : i + 1]})[0]
            torch.testing.assert_close(short_loss, long_loss, rtol=1e-5, atol=1e-5)
        short = task._loss({"tokens": tokens, "landmarks": x})
        long_ = task._loss({"tokens": tokens, "landmarks": long})
        for a, b in zip(short, long_, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    norms = [m for m in task.net.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert norms and all(isinstance(m, MaskedBatchNorm) for m in norms)  # all masked


@pytest.mark.parametrize("mode", ["replace", "mask"])
def test_token_noise_corrupts_only_the_decoder_inputs_characters_and_only_in_training(mode):
    torch.manual_seed(0)
    task = Seq2SeqTask(**TINY_TASK, token_noise=0.5, token_noise_mode=mode)
    seen = []
    forward_train = task.net.forward_train

    def record(landmarks, inputs, *rest):
        seen.append(inputs.clone())
        return forward_train(landmarks, inputs, *rest)

    task.net.forward_train = record
    tokens = torch.full((64, 9), vocab.PAD)  # max_target_len 8
    for i in range(64):
        ids = [vocab.SOS, *vocab.encode("abcdefg"[: 1 + i % 7]), vocab.EOS]
        tokens[i, : len(ids)] = torch.tensor(ids)
    batch = {"tokens": tokens, "landmarks": torch.rand(64, 16, task.config.num_columns)}
    task.eval()
    task._loss(batch)
    assert torch.equal(seen[-1], tokens[:, :-1])  # validation: clean inputs
    task.train()
    task._loss(batch)
    inputs, clean = seen[-1], tokens[:, :-1]
    chars = clean < vocab.NUM_CHARACTERS
    assert torch.equal(inputs[~chars], clean[~chars])  # start, end, pad untouched
    changed = inputs != clean
    assert 0.3 < changed[chars].float().mean() < 0.6  # about half of the characters
    if mode == "mask":
        assert (inputs[changed] == vocab.PAD).all()
    else:
        assert (inputs[chars] < vocab.NUM_CHARACTERS).all()  # another character


def test_the_backward_decoder_reads_the_phrases_right_to_left_in_training_only():
    torch.manual_seed(0)
    made = Seq2SeqTask(**TINY_TASK, backward_weight=0.4).eval()
    assert made.net.backward_decoder is not None and made.config.backward_decoder
    with pytest.raises(ValueError, match="model.backward_decoder is set by model.backward_weight"):
        Seq2SeqTask(**TINY_TASK, backward_decoder=True)
    with pytest.raises(ValueError, match="model.backward_weight = 1.0: a fraction"):
        Seq2SeqTask(**TINY_TASK, backward_weight=1.0)
    phrases = ["abc", "hello", "a"]
    tokens = torch.full((3, 9), vocab.PAD)
    for i, phrase in enumerate(phrases):
        ids = [vocab.SOS, *vocab.encode(phrase), vocab.EOS]
        tokens[i, : len(ids)] = torch.tensor(ids)
    reversed_tokens = reverse_phrases(tokens)
    assert [vocab.decode(r[1:].tolist()) for r in reversed_tokens] == ["cba", "olleh", "a"]
    landmarks = torch.rand(3, 16, made.config.num_columns)
    with torch.no_grad():
        loss, _, _ = made._loss({"tokens": tokens, "landmarks": landmarks})
        out = made.net.forward_train(landmarks, tokens[:, :-1], reversed_tokens[:, :-1])
        ce = torch.nn.functional.cross_entropy(
            out.logits.transpose(1, 2), tokens[:, 1:], ignore_index=vocab.PAD
        )
        backward = torch.nn.functional.cross_entropy(
            out.backward.transpose(1, 2), reversed_tokens[:, 1:], ignore_index=vocab.PAD
        )
    torch.testing.assert_close(loss, 0.6 * ce + 0.4 * backward)
    # no read-out uses it: the file is the forward decoder's, and its weights are accounted for
    twin = export_twin(made.net, "attention")
    covered = twin.covered_tensors()
    assert all(id(p) in covered for p in made.net.backward_decoder.parameters())
    x = torch.rand(1, 16, made.config.num_columns)
    without = Seq2SeqTask(**TINY_TASK).eval()
    without.net.load_state_dict(made.net.state_dict(), strict=False)
    with torch.no_grad():
        assert torch.equal(made.net.decode(x), without.net.decode(x))
