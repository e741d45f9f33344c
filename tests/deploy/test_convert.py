"""Conversion to TFLite: the settings checked before converting, and the submission files."""

from __future__ import annotations

import json
import zipfile

import pytest

from aslfs_pl.deploy.contract import ARGS_FILE, MODEL_FILE
from aslfs_pl.deploy.convert import STAGES, convert, write_inference_args, write_submission
from aslfs_pl.deploy.runtime import TFLiteRunner
from aslfs_pl.deploy.stages import ExportError
from tests.helpers import COLUMNS, nan_frames, tiny_net


def test_unwritable_output_is_found_before_converting(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ExportError, match=r"\[check\] cannot write to .*file"):
        convert(tiny_net(), COLUMNS, blocker / "out")


def test_unknown_weight_type_names_the_stage(tmp_path):
    with pytest.raises(ExportError, match=r"\[check\] weights 'int4'"):
        convert(tiny_net(), COLUMNS, tmp_path, weights="int4")


def test_column_count_mismatch_names_the_stage(tmp_path):
    with pytest.raises(ExportError, match=r"\[check\] 3 selected columns but the model reads 12"):
        convert(tiny_net(), COLUMNS[:3], tmp_path)


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
    assert list(result.stage_seconds) == STAGES  # timed in order
    out = runner.outputs(nan_frames(5))
    assert out.shape[0] == 8 and out.shape[1] >= 59


def test_submission_zip_holds_the_model_and_the_columns_at_its_root(tmp_path):
    model = tmp_path / MODEL_FILE
    model.write_bytes(b"a model")
    args = write_inference_args(tmp_path, COLUMNS)
    assert args.name == ARGS_FILE == "inference_args.json" and MODEL_FILE == "model.tflite"
    assert json.loads(args.read_text()) == {"selected_columns": COLUMNS}
    with zipfile.ZipFile(write_submission(tmp_path, model, args)) as z:
        assert sorted(z.namelist()) == [ARGS_FILE, MODEL_FILE]
        assert z.read(MODEL_FILE) == b"a model"
        assert json.loads(z.read(ARGS_FILE)) == {"selected_columns": COLUMNS}
