"""TFLite export: the deployment wrapper, conversion, parity at every length, scripts."""

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

from aslfs_pl import vocab
from aslfs_pl.data.features import fit_length
from aslfs_pl.export import (
    ExportError,
    ParityReport,
    ParityRow,
    TFLiteRunner,
    compare_decodings,
    convert,
    deployment_module,
    load_checkpoint,
    parity_report,
)
from aslfs_pl.export_dynamic import DynamicKaggleModel
from aslfs_pl.model.seq2seq import ModelConfig, Seq2Seq

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


BUFFER = {"static": 64, "dynamic": None}  # frames each route reads (None: all)


@pytest.mark.parametrize("route", ["static", "dynamic"])
@pytest.mark.parametrize("t", [0, 1, 2, 17, 16, 66, 200, "5 empty"])
def test_wrapper_matches_training_path_at_every_length(route, t):
    net = tiny_net()
    wrapper = deployment_module(net, route, buffer_frames=64)
    # "5 empty": frames but no landmark seen, so cross-attention falls back to frame 0
    x = np.full((5, 12), np.nan, np.float32) if t == "5 empty" else nan_frames(t, seed=t)
    with torch.no_grad():
        out = wrapper(torch.from_numpy(x))["outputs"].numpy()
        tokens, logits = net.generate(torch.from_numpy(fit_length(x[: BUFFER[route]], 16))[None])
    assert out.shape == (8, vocab.VOCAB_SIZE)
    assert vocab.decode_kaggle(out.argmax(1)) == vocab.decode(tokens[0].tolist())
    tokens = tokens[0].numpy()
    before_end = ~(np.cumsum(tokens == vocab.EOS) - (tokens == vocab.EOS) > 0)
    np.testing.assert_allclose(out[before_end], logits[0].numpy()[before_end], atol=1e-5)


def test_dynamic_wrapper_reads_all_frames_and_resamples_like_training():
    # 3000 frames > the static buffer: the dynamic graph resamples all of them (fit_length)
    net = tiny_net()
    x = nan_frames(3000, seed=3)
    x[2000:] += 0.3  # the end of the sequence differs from its start
    with torch.no_grad():
        out = DynamicKaggleModel(net)(torch.from_numpy(x))["outputs"].numpy()
        _, logits = net.generate(torch.from_numpy(fit_length(x, 16))[None])
    np.testing.assert_allclose(out[0], logits[0, 0].numpy(), atol=1e-5)


def test_dynamic_wrapper_state_dict_is_the_networks():
    net, other = tiny_net(seed=0), tiny_net(seed=1)
    wrapper = DynamicKaggleModel(net)
    assert sorted(wrapper.state_dict()) == sorted(f"net.{k}" for k in net.state_dict())
    # loading another network's weights changes the outputs to that network's (nothing cached)
    wrapper.load_state_dict({f"net.{k}": v for k, v in other.state_dict().items()})
    x = torch.from_numpy(nan_frames(30))
    with torch.no_grad():
        np.testing.assert_allclose(
            wrapper(x)["outputs"].numpy(), DynamicKaggleModel(other)(x)["outputs"].numpy()
        )


def test_dynamic_wrapper_folds_trained_batch_norm_statistics():
    net = tiny_net()
    with torch.no_grad():  # non-trivial running statistics, as after training
        for bn in (net.embedding.norm, net.embedding.convs[0].norm):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    x = nan_frames(40)
    with torch.no_grad():
        out = DynamicKaggleModel(net)(torch.from_numpy(x))["outputs"].numpy()
        _, logits = net.generate(torch.from_numpy(fit_length(x, 16))[None])
    np.testing.assert_allclose(out[0], logits[0, 0].numpy(), atol=1e-5)


@pytest.mark.parametrize("route", ["static", "dynamic"])
def test_rows_after_the_end_token_decode_to_nothing(route):
    net = tiny_net()
    with torch.no_grad():
        net.decoder.head.bias.zero_()
        net.decoder.head.bias[vocab.EOS] = 50.0
    with torch.no_grad():
        out = deployment_module(net, route, 64)(torch.from_numpy(nan_frames(10)))
    out = out["outputs"].numpy()
    assert out[0].argmax() == vocab.EOS
    assert (out[1:].argmax(1) == vocab.PAD).all()
    assert vocab.decode_kaggle(out.argmax(1)) == ""


def test_unknown_route_names_the_stage(tmp_path):
    with pytest.raises(ExportError, match=r"\[check\] route 'onnx'"):
        convert(tiny_net(), COLUMNS, tmp_path, route="onnx")


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
    with pytest.raises(ExportError, match=r"\[load\] .*missing.ckpt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"nope")
    with pytest.raises(ExportError, match=r"\[load\] .*bad.ckpt: not a loadable"):
        load_checkpoint(bad)


@pytest.fixture(scope="module", params=["dynamic", "static"])
def exported(request, tmp_path_factory):
    net = tiny_net()
    out = tmp_path_factory.mktemp(f"export_{request.param}")
    result = convert(net, COLUMNS, out, route=request.param, buffer_frames=64)
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
    frames_axis = runner.interpreter.get_input_details()[0]["shape_signature"][0]
    if result.route == "dynamic":
        assert frames_axis == -1
    else:  # the traced length; the interpreter resizes it at run time
        assert frames_axis > 0
    out = runner.outputs(nan_frames(5))
    assert out.shape[0] == 8 and out.shape[1] >= 59


@pytest.mark.slow
def test_tflite_parity_at_every_length_fp16(exported):
    net, result = exported
    report = parity_report(net, result.model_path, BUFFER[result.route], weights="fp16",
                           lengths=(0, 1, 2, 17, 16, 66, 1000))  # fmt: skip
    assert report.ok, report.summary()
    assert report.same_texts == len(report.rows)


@pytest.mark.slow
def test_tflite_text_equals_pytorch_at_every_length_up_to_300(exported):
    # every resampling ratio up to T = 300 (max_frames 16): an index off by one at any length
    # (e.g. from an inexact in-graph frame count) shows up here
    net, result = exported
    report = parity_report(net, result.model_path, BUFFER[result.route], weights="fp16",
                           lengths=tuple(range(301)), seed=1)  # fmt: skip
    assert report.same_texts == len(report.rows), report.summary()


@pytest.mark.slow
@pytest.mark.parametrize("route", ["dynamic", "static"])
def test_tflite_parity_fp32_is_tight(route, tmp_path):
    net = tiny_net(seed=1)
    result = convert(net, COLUMNS, tmp_path, weights="fp32", route=route, buffer_frames=64)
    report = parity_report(net, result.model_path, BUFFER[route], weights="fp32",
                           lengths=(0, 1, 17, 16, 66, 1000))  # fmt: skip
    assert report.ok, report.summary()
    assert max(row.max_diff for row in report.rows) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("route", ["dynamic", "static"])
def test_tflite_parity_int8_flips_only_near_ties(route, tmp_path):
    net = tiny_net()
    result = convert(net, COLUMNS, tmp_path, weights="int8", route=route, buffer_frames=64)
    assert result.weights == "int8"
    lengths = (*range(0, 120, 3), 1000)
    report = parity_report(net, result.model_path, BUFFER[route], "int8", lengths=lengths)
    assert report.ok, report.summary()
    # measured: logits within ~0.02 of PyTorch, about 1 text in 60 flips at a near tie
    assert max(row.max_diff for row in report.rows) < 0.1, report.summary()
    assert report.same_texts >= 0.8 * len(lengths), report.summary()
    # the check fails when the file computes something else (one logit moved by 1.0)
    shifted = copy.deepcopy(net)
    with torch.no_grad():
        shifted.decoder.head.bias[5] += 1.0
    assert not parity_report(shifted, result.model_path, BUFFER[route], "int8", lengths=lengths).ok


@pytest.mark.slow
def test_export_evaluate_predict_scripts_from_a_checkpoint(synthetic_dir, tmp_path):
    from aslfs_pl import cli

    cli.main([
        "fit", "--config", str(ROOT / "configs/tiny.yaml"), "--data.data_dir", str(synthetic_dir),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "1",
        "--data.val_fraction", "0.25",
    ])  # fmt: skip
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
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
         "--ckpt", str(ckpt), "--data_dir", str(synthetic_dir), "--split", "val"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any(line.strip().startswith("tflite") and "score" in line for line in lines)
    assert any(line.strip().startswith("pytorch") and "score" in line for line in lines)
    same = next(line for line in lines if "identical predictions" in line)
    n_same, n_all = (int(v) for v in same.split(":")[1].split("/"))
    assert n_same == n_all > 0
    parquet = next((synthetic_dir / "train_landmarks").glob("*.parquet"))
    csv_out = tmp_path / "pred.csv"
    proc = subprocess.run(
        [*run, "scripts/predict.py", "--submission", str(out), "--parquet", str(parquet),
         "--out", str(csv_out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = csv_out.read_text().splitlines()
    assert rows[0] == "sequence_id,phrase" and len(rows) > 1
