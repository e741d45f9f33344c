"""The TFLite runner reads a submission as Kaggle's evaluator does, and refuses broken ones."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from aslfs_pl.deploy.runtime import TFLiteRunner
from aslfs_pl.deploy.stages import ExportError


@pytest.mark.slow
def test_runner_reads_submissions_without_args_and_refuses_broken_ones(
    exported, tmp_path, synthetic_dir
):
    _, result = exported
    no_args = tmp_path / "no_args.zip"
    with zipfile.ZipFile(no_args, "w") as z:
        z.write(result.model_path, "model.tflite")
    runner = TFLiteRunner(no_args)
    assert runner.selected_columns is None  # callers say what is missing
    wrong = np.zeros((5, runner.columns + 1), np.float32)  # another landmark set's frames
    with pytest.raises(
        ExportError, match=rf"\[run\] .*no_args.zip: frames of shape \(5, {runner.columns + 1}\)"
    ):
        runner.outputs(wrong)
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


def test_runner_names_what_is_missing_or_unreadable_before_running_anything(tmp_path):
    with pytest.raises(ExportError, match=r"\[load\] .*nowhere.tflite: file not found"):
        TFLiteRunner(tmp_path / "nowhere.tflite")
    (tmp_path / "empty").mkdir()  # a directory without model.tflite
    with pytest.raises(ExportError, match=r"\[load\] .*empty/model.tflite: file not found"):
        TFLiteRunner(tmp_path / "empty")
    no_model = tmp_path / "no_model.zip"
    with zipfile.ZipFile(no_model, "w") as z:
        z.writestr("inference_args.json", '{"selected_columns": ["x_face_0"]}')
    with pytest.raises(ExportError, match=r"\[load\] .*no_model.zip: no model.tflite inside"):
        TFLiteRunner(no_model)
    for args, complaint in (
        ('{"columns": []}', "no selected_columns list"),
        ('{"selected_columns": "x_face_0"}', "selected_columns is not a list of column names"),
        ("not json", "no selected_columns list"),
    ):
        folder = tmp_path / f"args{len(args)}"
        folder.mkdir()
        (folder / "model.tflite").write_bytes(b"not read: the columns are checked first")
        (folder / "inference_args.json").write_text(args)
        with pytest.raises(ExportError, match=rf"\[load\] .*inference_args.json: {complaint}"):
            TFLiteRunner(folder)
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a flatbuffer")
    with pytest.raises(ExportError, match=r"\[load\] .*garbage.tflite: not a readable TFLite"):
        TFLiteRunner(garbage)
