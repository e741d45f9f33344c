"""Deployment: each layer's export form, the Kaggle graph, conversion, parity, scripts."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aslfs_pl import vocab
from aslfs_pl.data.features import fit_length
from aslfs_pl.deploy.convert import convert
from aslfs_pl.deploy.graph import KaggleModel
from aslfs_pl.deploy.parity import ParityReport, parity_report
from aslfs_pl.deploy.runtime import TFLiteRunner
from aslfs_pl.deploy.stages import ExportError
from aslfs_pl.model.config import ModelConfig
from aslfs_pl.model.ctc import ctc_greedy
from aslfs_pl.model.decoding import Encoded, ParityRow
from aslfs_pl.model.decoding.attention import compare_steps as compare_decodings
from aslfs_pl.model.seq2seq import Seq2Seq
from aslfs_pl.trained import LoadError, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = [f"{a}_left_hand_{i}" for a in "xy" for i in range(6)]


def tiny_net(seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        num_columns=12, num_axes=2, max_frames=16, max_target_len=8, dim=32, heads=2,
        mlp_ratio=2, conv_blocks=1, conv_kernel=5, encoder_blocks=1, local_layers=1, window=4,
        decoder_blocks=1, dropout=0.0,
    )  # fmt: skip
    net = Seq2Seq(cfg).eval()
    with torch.no_grad():  # trained-like norms, so that folding their scale/shift is tested
        for m in net.modules():
            if isinstance(m, torch.nn.LayerNorm | torch.nn.BatchNorm1d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    return net


def nan_frames(t: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.8, (t, 12)).astype(np.float32)
    x[rng.random(t) < 0.2] = np.nan
    x[rng.random(t) < 0.3, :3] = np.nan
    return x


@pytest.mark.parametrize("t", [0, 1, 2, 17, 16, 66, 200, "5 empty"])
def test_graph_matches_training_path_at_every_length(t):
    net = tiny_net()
    wrapper = KaggleModel(net)
    # "5 empty": frames but no landmark seen, so cross-attention falls back to frame 0
    x = np.full((5, 12), np.nan, np.float32) if t == "5 empty" else nan_frames(t, seed=t)
    with torch.no_grad():
        out = wrapper(torch.from_numpy(x))["outputs"].numpy()
        tokens, logits = net.generate(torch.from_numpy(fit_length(x, 16))[None])
    assert out.shape == (8, vocab.VOCAB_SIZE)
    assert vocab.decode_kaggle(out.argmax(1)) == vocab.decode(tokens[0].tolist())
    tokens = tokens[0].numpy()
    before_end = ~(np.cumsum(tokens == vocab.EOS) - (tokens == vocab.EOS) > 0)
    np.testing.assert_allclose(out[before_end], logits[0].numpy()[before_end], atol=1e-5)


def test_graph_reads_all_frames_and_resamples_like_training():
    # 3000 frames: the graph resamples all of them (fit_length)
    net = tiny_net()
    x = nan_frames(3000, seed=3)
    x[2000:] += 0.3  # the end of the sequence differs from its start
    with torch.no_grad():
        out = KaggleModel(net)(torch.from_numpy(x))["outputs"].numpy()
        _, logits = net.generate(torch.from_numpy(fit_length(x, 16))[None])
    np.testing.assert_allclose(out[0], logits[0, 0].numpy(), atol=1e-5)


def test_graph_is_a_snapshot_of_the_weights_it_was_built_from():
    net, other = tiny_net(seed=0), tiny_net(seed=1)
    graph = KaggleModel(net)
    x = torch.from_numpy(nan_frames(30))
    with torch.no_grad():
        before = graph(x)["outputs"].numpy()
        net.load_state_dict(other.state_dict())  # later changes to the network: not seen
        np.testing.assert_array_equal(graph(x)["outputs"].numpy(), before)
        np.testing.assert_allclose(
            KaggleModel(net)(x)["outputs"].numpy(), KaggleModel(other)(x)["outputs"].numpy()
        )


class _Extra(nn.Module):  # a layer written without an export form
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x * self.scale


def test_a_layer_without_export_form_fails_at_export_naming_it():
    net = tiny_net()
    net.encoder.blocks[0].extra = _Extra()  # a new layer the block's twin knows nothing of
    with pytest.raises(
        ExportError, match=r"\[check\] .*encoder\.blocks\.0\.extra\.scale \(_Extra\)"
    ):
        KaggleModel(net)
    for owner in ("decoder", "embedding"):  # a weight added straight onto a covered module
        net = tiny_net()
        getattr(net, owner).gain = nn.Parameter(torch.ones(1))
        with pytest.raises(ExportError, match=rf"\[check\] .*{owner}\.gain \("):
            KaggleModel(net)
    net = tiny_net()
    net.encoder.blocks[0].mlp = _Extra()  # a layer replaced by a class with no export_form
    with pytest.raises(ExportError, match=r"\[check\] layer _Extra has no export_form"):
        KaggleModel(net)


def test_every_trained_weight_reaches_the_graph():
    # the coverage check proves a twin was built for each weight; this proves each one is used
    net = tiny_net()
    x = torch.from_numpy(nan_frames(20))
    with torch.no_grad():
        base = KaggleModel(net)(x)["outputs"].numpy()
        torch.manual_seed(0)
        for name, p in net.named_parameters():
            # random, not constant: a constant shift of the last bias before a LayerNorm is
            # removed by the norm itself
            kept = p.clone()
            p.add_(torch.randn_like(p))
            changed = KaggleModel(net)(x)["outputs"].numpy()
            p.copy_(kept)
            assert not np.allclose(changed, base), f"{name} does not change the outputs"


@pytest.mark.parametrize("num_axes", [2, 3])
def test_graph_matches_training_path_with_deeper_nets_and_three_axes(num_axes):
    torch.manual_seed(3)
    cfg = ModelConfig(
        num_columns=6 * num_axes, num_axes=num_axes, max_frames=16, max_target_len=6, dim=32,
        heads=4, mlp_ratio=2, conv_blocks=2, conv_kernel=3, encoder_blocks=2, local_layers=2,
        window=3, decoder_blocks=2, dropout=0.0,
    )  # fmt: skip
    net = Seq2Seq(cfg).eval()
    graph = KaggleModel(net)
    rng = np.random.default_rng(num_axes)
    for t in (0, 1, 9, 16, 40):
        x = rng.uniform(0.2, 0.8, (t, 6 * num_axes)).astype(np.float32)
        x[rng.random(t) < 0.3, :num_axes] = np.nan
        with torch.no_grad():
            out = graph(torch.from_numpy(x))["outputs"].numpy()
            tokens, logits = net.generate(torch.from_numpy(fit_length(x, 16))[None])
        tokens = tokens[0].numpy()
        before_end = ~(np.cumsum(tokens == vocab.EOS) - (tokens == vocab.EOS) > 0)
        np.testing.assert_allclose(out[before_end], logits[0].numpy()[before_end], atol=1e-5)


def tiny_ctc_net() -> Seq2Seq:
    net = tiny_net()
    cfg = copy.deepcopy(net.config)
    cfg.ctc_head = True
    with_head = Seq2Seq(cfg).eval()
    with_head.load_state_dict(net.state_dict(), strict=False)  # the trained-like norms; new head
    return with_head


def test_attention_route_covers_and_leaves_out_the_ctc_head():
    net = tiny_ctc_net()
    x = torch.from_numpy(nan_frames(20))
    with torch.no_grad():
        out = KaggleModel(net)(x)["outputs"].numpy()
        _, logits = net.generate(torch.from_numpy(fit_length(nan_frames(20), 16))[None])
    np.testing.assert_allclose(out[0], logits[0, 0].numpy(), atol=1e-5)


@pytest.mark.parametrize("t", [0, 1, 2, 16, 17, 66, 200])
def test_ctc_route_matches_training_path_and_reads_only_its_head(t):
    net = tiny_ctc_net()
    graph = KaggleModel(net, "ctc")
    x = nan_frames(t, seed=t)
    with torch.no_grad():
        out = graph(torch.from_numpy(x))["outputs"].numpy()
        encoded = Encoded(net, torch.from_numpy(fit_length(x, 16))[None])
        logits = encoded.ctc_logits()
        tokens = ctc_greedy(logits, encoded.valid)[0].numpy()
    assert out.shape == (t + 1, vocab.VOCAB_SIZE)  # one row per frame, plus the appended one
    assert vocab.decode_kaggle(out.argmax(1)) == vocab.decode(tokens)
    emitted = np.flatnonzero(tokens != vocab.PAD)
    np.testing.assert_allclose(out[emitted], logits[0, emitted].numpy(), atol=1e-5)
    with torch.no_grad():  # a graph built after changing the decoder: the same outputs
        net.decoder.head.bias.add_(5.0)
        again = KaggleModel(net, "ctc")(torch.from_numpy(x))["outputs"].numpy()
        np.testing.assert_array_equal(again, out)
    with pytest.raises(ExportError, match=r"\[check\] ctc decoding needs the CTC head"):
        KaggleModel(tiny_net(), "ctc")


def test_graph_folds_trained_batch_norm_statistics():
    net = tiny_net()
    with torch.no_grad():  # non-trivial running statistics, as after training
        for bn in (net.embedding.norm, net.embedding.convs[0].norm):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    x = nan_frames(40)
    with torch.no_grad():
        out = KaggleModel(net)(torch.from_numpy(x))["outputs"].numpy()
        _, logits = net.generate(torch.from_numpy(fit_length(x, 16))[None])
    np.testing.assert_allclose(out[0], logits[0, 0].numpy(), atol=1e-5)


def test_rows_after_the_end_token_decode_to_nothing():
    net = tiny_net()
    with torch.no_grad():
        net.decoder.head.bias.zero_()
        net.decoder.head.bias[vocab.EOS] = 50.0
    with torch.no_grad():
        out = KaggleModel(net)(torch.from_numpy(nan_frames(10)))
    out = out["outputs"].numpy()
    assert out[0].argmax() == vocab.EOS
    assert (out[1:].argmax(1) == vocab.PAD).all()
    assert vocab.decode_kaggle(out.argmax(1)) == ""


def test_unwritable_output_is_found_before_converting(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ExportError, match=r"\[check\] cannot write to .*file"):
        convert(tiny_net(), COLUMNS, blocker / "out")


def test_unknown_weight_type_names_the_stage(tmp_path):
    with pytest.raises(ExportError, match=r"\[check\] weights 'int4'"):
        convert(tiny_net(), COLUMNS, tmp_path, weights="int4")


def test_parity_rule_allows_near_tie_flips_only_for_int8():
    flip = ParityRow(17, same_text=False, max_diff=0.01, diverged_at=3, margin=0.005)
    wide = ParityRow(17, same_text=False, max_diff=0.01, diverged_at=3, margin=0.8)
    equal = ParityRow(1, same_text=True, max_diff=0.01, diverged_at=None, margin=0.0)
    far = ParityRow(2, same_text=True, max_diff=0.6, diverged_at=None, margin=0.0)
    # a token Kaggle drops (pad) picked instead of PyTorch's: text equal, tokens not
    hidden = ParityRow(3, same_text=True, max_diff=0.01, diverged_at=2, margin=0.3)
    assert ParityReport([equal, flip], 0.5, allow_near_ties=True).ok
    assert not ParityReport([equal, flip], 0.05, allow_near_ties=False).ok
    assert not ParityReport([wide], 0.5, allow_near_ties=True).ok
    assert not ParityReport([equal, far], 0.5, allow_near_ties=True).ok
    assert not ParityReport([hidden], 0.5, allow_near_ties=False).ok
    summary = ParityReport([flip], 0.5, allow_near_ties=True).summary()
    assert "DIFFERENT from step 3" in summary and "texts equal: 0/1" in summary


def _logits(tokens: list[int]) -> np.ndarray:
    out = np.zeros((len(tokens), vocab.VOCAB_SIZE), np.float32)
    out[np.arange(len(tokens)), tokens] = 5.0
    return out


@pytest.mark.parametrize(
    "picked, diverged_at, compared_rows",
    [
        ([5, 6, vocab.EOS, vocab.PAD, vocab.PAD], None, 3),  # same; rows after the end ignored
        ([5, vocab.EOS, vocab.PAD, vocab.PAD, vocab.PAD], 1, 2),  # TFLite ends early
        ([5, 6, 7, 8, vocab.EOS], 2, 3),  # TFLite ends late
        ([9, 6, vocab.EOS, vocab.PAD, vocab.PAD], 0, 1),  # first token differs
    ],
)
def test_compare_decodings_stops_at_the_first_different_token(picked, diverged_at, compared_rows):
    ref_tokens = np.array([5, 6, vocab.EOS, vocab.PAD, vocab.PAD])
    ref_logits = _logits(ref_tokens.tolist())
    steps = np.arange(5)
    # where TFLite picks another token, it was PyTorch's runner-up (4.9 vs 5.0) ...
    ref_logits[steps, picked] = np.maximum(ref_logits[steps, picked], 4.9)
    out = ref_logits.copy()
    out[steps, picked] = 5.05  # ... which TFLite's slightly different logits put first
    out[compared_rows:] += 3.0  # rows that must not be compared: a large difference
    row = compare_decodings(7, out, ref_tokens, ref_logits)
    assert row.diverged_at == diverged_at
    assert row.same_text == (diverged_at is None)
    assert row.max_diff == pytest.approx(0.05 if diverged_at is None else 0.15, abs=1e-5)
    assert row.margin == pytest.approx(0.0 if diverged_at is None else 0.1, abs=1e-5)


def test_column_count_mismatch_names_the_stage(tmp_path):
    with pytest.raises(ExportError, match=r"\[check\] 3 selected columns but the model reads 12"):
        convert(tiny_net(), COLUMNS[:3], tmp_path)


def test_bad_checkpoint_names_the_stage(tmp_path):
    with pytest.raises(LoadError, match=r"\[load\] .*missing.ckpt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"nope")
    with pytest.raises(LoadError, match=r"\[load\] .*bad.ckpt: not a loadable"):
        load_checkpoint(bad)


@pytest.mark.parametrize("t", [0, 1, 5, 16, 17, 66, 200])
def test_joint_route_matches_training_path(t):
    net = tiny_ctc_net()
    x = nan_frames(t, seed=t)
    with torch.no_grad():
        out = KaggleModel(net, "joint")(torch.from_numpy(x))["outputs"].numpy()
        want = net.decode(torch.from_numpy(fit_length(x, 16))[None], "joint")[0].numpy()
    assert out.shape == (8, vocab.VOCAB_SIZE)
    np.testing.assert_array_equal(out.argmax(1), want)


@pytest.mark.slow
def test_joint_route_tflite_equals_pytorch_at_every_length_up_to_150(tmp_path):
    net = tiny_ctc_net()
    result = convert(net, COLUMNS, tmp_path, decoding="joint")
    report = parity_report(
        net, result.model_path, "fp16", lengths=tuple(range(151)), decoding="joint"
    )
    assert report.ok and report.same_texts == len(report.rows), report.summary()
    texts = {vocab.decode_kaggle(TFLiteRunner(result.model_path).outputs(nan_frames(t, t)).argmax(1))
             for t in range(0, 151, 10)}  # fmt: skip
    assert len(texts) > 5  # the phrases depend on the input


@pytest.mark.slow
def test_ctc_route_tflite_equals_pytorch_up_to_near_ties_at_every_length_up_to_300(tmp_path):
    net = tiny_ctc_net()
    result = convert(net, COLUMNS, tmp_path, decoding="ctc")
    report = parity_report(
        net, result.model_path, "fp16", lengths=tuple(range(301)), decoding="ctc"
    )
    # an untrained head ties two classes within fp16 rounding at a few frames: those may flip
    assert report.ok and report.same_texts >= 290, report.summary()
    flips = [r for r in report.rows if r.diverged_at is not None]
    assert all(r.margin < 0.005 for r in flips), report.summary()
    assert sum(r.max_diff > 0 for r in report.rows) > 250  # logits were compared, not skipped


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = tiny_net()
    result = convert(net, COLUMNS, tmp_path_factory.mktemp("export"))
    return net, result


@pytest.mark.slow
def test_submission_layout_and_signature(exported):
    net, result = exported
    with zipfile.ZipFile(result.zip_path) as z:
        assert sorted(z.namelist()) == ["inference_args.json", "model.tflite"]
        assert json.loads(z.read("inference_args.json")) == {"selected_columns": COLUMNS}
    runner = TFLiteRunner(result.zip_path)
    sig = runner.interpreter.get_signature_list()
    assert sig == {"serving_default": {"inputs": ["inputs"], "outputs": ["outputs"]}}
    assert runner.selected_columns == COLUMNS
    assert runner.interpreter.get_input_details()[0]["shape_signature"][0] == -1  # any length
    assert set(result.stage_seconds) == {"check", "trace", "decompose", "lower", "write"}
    out = runner.outputs(nan_frames(5))
    assert out.shape[0] == 8 and out.shape[1] >= 59


@pytest.mark.slow
def test_runner_reads_submissions_without_args_and_refuses_broken_ones(
    exported, tmp_path, synthetic_dir
):
    _, result = exported
    no_args = tmp_path / "no_args.zip"
    with zipfile.ZipFile(no_args, "w") as z:
        z.write(result.model_path, "model.tflite")
    assert TFLiteRunner(no_args).selected_columns is None  # callers say what is missing
    from aslfs_pl.commands import evaluate, predict

    for command, extra in (
        (evaluate, ["--data_dir", str(synthetic_dir), "--split", "all"]),
        (predict, ["--parquet", "x.parquet", "--out", str(tmp_path / "p.csv")]),
    ):
        with pytest.raises(SystemExit, match="no inference_args.json: cannot tell its columns"):
            command.main(["--submission", str(no_args), *extra])
    no_model = tmp_path / "no_model.zip"
    with zipfile.ZipFile(no_model, "w") as z:
        z.write(result.args_path, "inference_args.json")
    with pytest.raises(ExportError, match=r"\[load\] .*no_model.zip: no model.tflite inside"):
        TFLiteRunner(no_model)
    bad_args = tmp_path / "bad_args"
    bad_args.mkdir()
    (bad_args / "model.tflite").write_bytes(result.model_path.read_bytes())
    (bad_args / "inference_args.json").write_text('{"columns": []}')
    with pytest.raises(ExportError, match=r"\[load\] .*inference_args.json: no selected_columns"):
        TFLiteRunner(bad_args)


@pytest.mark.slow
def test_tflite_parity_at_every_length_fp16(exported):
    net, result = exported
    report = parity_report(net, result.model_path, "fp16", lengths=(0, 1, 2, 17, 16, 66, 1000))
    assert report.ok, report.summary()
    assert report.same_texts == len(report.rows)


@pytest.mark.slow
def test_tflite_text_equals_pytorch_at_every_length_up_to_300(exported):
    # every resampling ratio up to T = 300 (max_frames 16): an index off by one at any length
    # (e.g. from an inexact in-graph frame count) shows up here
    net, result = exported
    report = parity_report(net, result.model_path, "fp16", lengths=tuple(range(301)), seed=1)
    assert report.same_texts == len(report.rows), report.summary()


@pytest.mark.slow
def test_tflite_parity_fp32_is_tight(tmp_path):
    net = tiny_net(seed=1)
    result = convert(net, COLUMNS, tmp_path, weights="fp32")
    report = parity_report(net, result.model_path, "fp32", lengths=(0, 1, 17, 16, 66, 1000))
    assert report.ok, report.summary()
    assert max(row.max_diff for row in report.rows) < 1e-4


@pytest.mark.slow
def test_tflite_parity_int8_flips_only_near_ties(tmp_path):
    net = tiny_net()
    result = convert(net, COLUMNS, tmp_path, weights="int8")
    assert result.weights == "int8"
    lengths = (*range(0, 120, 3), 1000)
    report = parity_report(net, result.model_path, "int8", lengths=lengths)
    assert report.ok, report.summary()
    # measured: logits within ~0.02 of PyTorch, about 1 text in 60 flips at a near tie
    assert max(row.max_diff for row in report.rows) < 0.1, report.summary()
    assert report.same_texts >= 0.8 * len(lengths), report.summary()
    # the check fails when the file computes something else (one logit moved by 1.0)
    shifted = copy.deepcopy(net)
    with torch.no_grad():
        shifted.decoder.head.bias[5] += 1.0
    assert not parity_report(shifted, result.model_path, "int8", lengths=lengths).ok


@pytest.fixture(scope="module")
def with_supplemental(tmp_path_factory) -> Path:
    """A dataset whose supplemental csv adds sequences (same signers, as the Kaggle data)."""
    from aslfs_pl.data.synthetic import write_synthetic_dataset

    out = tmp_path_factory.mktemp("with_supplemental")
    write_synthetic_dataset(out, 100, seed=2, supplemental_sequences=40, sequences_per_file=50)
    return out


@pytest.mark.slow
def test_export_evaluate_predict_scripts_from_a_checkpoint(with_supplemental, tmp_path):
    from aslfs_pl import cli

    data = with_supplemental
    fitted = cli.main([
        "fit", "--config", str(ROOT / "configs/tiny.yaml"), "--data.data_dir", str(data),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "1",
        "--data.val_fraction", "0.25", "--data.sources", "[train, supplemental]",
    ])  # fmt: skip
    trained_val = sorted(fitted.datamodule.val_set.index.sequence_id.tolist())
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    # the checkpoint rebuilds the training split exactly, supplemental sequences included
    dm = load_checkpoint(ckpt, data_dir=str(data)).datamodule
    assert dm.sources == ("train", "supplemental")
    assert sorted(dm.split(dm.index())[1].sequence_id.tolist()) == trained_val
    supplemental = (data / "supplemental_metadata.csv").read_text().splitlines()[1:]
    supplemental_ids = {int(line.split(",")[2]) for line in supplemental}
    assert supplemental_ids & set(trained_val)
    out = tmp_path / "sub"
    run = [sys.executable, "-W", "ignore"]
    proc = subprocess.run(
        # fp32 so that every prediction must match PyTorch exactly (fp16 weights can flip a
        # near-tie; its parity is checked on logits above)
        [*run, "scripts/export_tflite.py", "--ckpt", str(ckpt), "--out", str(out), "--fp32"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "parity: OK" in proc.stdout
    proc = subprocess.run(
        [*run, "scripts/evaluate.py", "--submission", str(out / "submission.zip"),
         "--ckpt", str(ckpt), "--data_dir", str(data), "--split", "val"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{len(trained_val)} sequences (val split")
    assert any(line.strip().startswith("tflite") and "score" in line for line in lines)
    assert any(line.strip().startswith("pytorch") and "score" in line for line in lines)
    same = next(line for line in lines if "identical predictions" in line)
    n_same, n_all = (int(v) for v in same.split(":")[1].split("/"))
    assert n_same == n_all == len(trained_val)
    parquet = next((data / "train_landmarks").glob("*.parquet"))
    csv_out = tmp_path / "pred.csv"
    proc = subprocess.run(
        [*run, "scripts/predict.py", "--submission", str(out), "--parquet", str(parquet),
         "--out", str(csv_out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = csv_out.read_text().splitlines()
    assert rows[0] == "sequence_id,phrase" and len(rows) > 1


@pytest.mark.slow
def test_export_script_takes_stacked_configs_and_overrides(tmp_path, capsys):
    from aslfs_pl.commands import export_tflite
    from aslfs_pl.trained import from_config

    override = ["--config", str(ROOT / "configs/tiny.yaml"), "--model.dim", "48",
                "--data.max_frames", "24"]  # fmt: skip
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
    from aslfs_pl.commands import export_tflite

    with pytest.raises(SystemExit):
        export_tflite.main(["--ckpt", "x.ckpt", "--no-check", "--out", str(tmp_path)])
    assert "unrecognised arguments with --ckpt: --no-check" in capsys.readouterr().err


def test_config_settings_rejected_by_the_model_name_the_setting():
    from aslfs_pl.trained import from_config

    with pytest.raises(LoadError, match=r"\[config\] .*model.dim 33 is not divisible"):
        from_config(["--config", str(ROOT / "configs/tiny.yaml"), "--model.dim", "33"])
    # a TPU config loads on this CPU machine (only the model and data settings are read)
    built = from_config(
        ["--config", str(ROOT / "configs/tiny.yaml"), "--config", str(ROOT / "configs/tpu.yaml")]
    )
    assert built.net.config.dim == 32


def test_job_stages_time_each_stage_and_name_the_failing_one(capsys):
    from aslfs_pl.deploy.stages import Job

    with Job("demo", ["one", "two"], progress=True) as job:
        with job.stage("one"):
            steps = list(job.track(range(3), 3, "steps"))
        with pytest.raises(ExportError, match=r"^\[two\] ValueError: broken$"), job.stage("two"):
            raise ValueError("broken")
    assert steps == [0, 1, 2]
    assert set(job.seconds) == {"one"}  # a failed stage records no time
    shown = capsys.readouterr().err
    assert "demo" in shown and "steps" in shown  # the display went to stderr
