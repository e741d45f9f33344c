"""Running an exported model exactly as Kaggle's evaluator does."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from aslfs_pl import vocab
from aslfs_pl.deploy.contract import ARGS_FILE, MODEL_FILE, SIGNATURE
from aslfs_pl.deploy.stages import ExportError
from aslfs_pl.terminal import native_chatter_filtered


def _columns(text: str | bytes, where: str) -> list[str]:
    try:
        columns = json.loads(text)["selected_columns"]
    except (ValueError, KeyError, TypeError) as err:
        raise ExportError(f"[load] {where}: no selected_columns list ({err})") from None
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ExportError(f"[load] {where}: selected_columns is not a list of column names")
    return columns


class TFLiteRunner:
    """The TFLite signature ``serving_default`` (``inputs`` -> ``outputs``) of a submission.

    Args:
        path: a ``model.tflite``, a directory holding it (and inference_args.json), or a
            ``submission.zip``.
        num_threads: interpreter threads.

    Attributes:
        selected_columns: from inference_args.json, or None when the submission has none.

    Raises:
        ExportError: ``[load]`` for a missing or unreadable file.
    """

    def __init__(self, path: str | Path, num_threads: int = 1):
        self.selected_columns: list[str] | None = None
        self.path = Path(path)
        with native_chatter_filtered():  # the interpreter announces its delegate
            self._load(self.path, num_threads)

    def _load(self, path: Path, num_threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as z:
                    names = set(z.namelist())
                    if MODEL_FILE not in names:
                        raise ExportError(f"[load] {path}: no {MODEL_FILE} inside")
                    model_bytes = z.read(MODEL_FILE)
                    if ARGS_FILE in names:
                        self.selected_columns = _columns(z.read(ARGS_FILE), f"{path}:{ARGS_FILE}")
                self.interpreter = Interpreter(model_content=model_bytes, num_threads=num_threads)
            else:
                model = path / MODEL_FILE if path.is_dir() else path
                if not model.is_file():
                    raise ExportError(f"[load] {model}: file not found")
                args = model.parent / ARGS_FILE
                if args.is_file():
                    self.selected_columns = _columns(args.read_text(), str(args))
                self.interpreter = Interpreter(model_path=str(model), num_threads=num_threads)
            self.runner = self.interpreter.get_signature_runner(SIGNATURE)
            # the first call applies the XNNPACK delegate (which says so): once, here
            self.columns = int(self.runner.get_input_details()["inputs"]["shape"][-1])
            self.runner(inputs=np.zeros((1, self.columns), np.float32))
        except ExportError:
            raise
        except (OSError, ValueError, RuntimeError, zipfile.BadZipFile) as err:
            raise ExportError(f"[load] {path}: not a readable TFLite submission ({err})") from err

    def outputs(self, frames: np.ndarray) -> np.ndarray:
        """(T, C) float32 -> (L, K) outputs."""
        if frames.ndim != 2 or frames.shape[1] != self.columns:
            raise ExportError(
                f"[run] {self.path}: frames of shape {tuple(frames.shape)}, the model reads "
                f"(frames, {self.columns}) landmark columns"
            )
        return self.runner(inputs=np.ascontiguousarray(frames, dtype=np.float32))["outputs"]

    def __call__(self, frames: np.ndarray) -> str:
        """Text of one sequence, decoded like Kaggle: argmax per row, indices >= 59 dropped."""
        return vocab.decode_kaggle(np.argmax(self.outputs(frames), axis=1))
