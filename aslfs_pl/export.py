"""TFLite export for Kaggle: preprocessing + encoder + greedy decoder in one graph.

Two routes, same outputs (checked by the parity tests at every length):

- ``dynamic`` (default): :class:`aslfs_pl.export_dynamic.DynamicKaggleModel`, exported with a
  symbolic frame axis through ``torch.export`` and litert-torch's TFLite-native decompositions, so
  a sequence costs its own length. It recomputes the trained network with export-friendly ops
  (reading the same parameters).
- ``static``: :class:`KaggleModel` reuses the training modules unchanged on a fixed frame axis.
  The input ``[T, C]`` is concatenated with ``buffer_frames`` NaN rows and cut back to
  ``buffer_frames`` rows, so every shape is fixed while T varies; T is measured from the data (a
  per-row indicator that no constant folding can remove), frames beyond ``max_frames`` are
  resampled exactly as in training (:func:`aslfs_pl.data.features.fit_length`), padding is NaN
  and the frame mask comes from NaN-ness. Every sequence costs ``max_frames`` frames, and frames
  after ``buffer_frames`` are ignored.

Why dynamic is the default: measured by scripts/bench_export.py (1 thread, seed config, 40
Kaggle-like lengths, one run), median 65.7 ms vs 120.1 ms for the static graph with fp16 weights
(1.8x), with the same outputs; see README, "Benchmarks".

Weights (``WEIGHTS``): fp16 by default; fp32; or int8 dynamic-range quantisation (int8 weights
per output channel, activations quantised by the kernels at run time), which halves the latency
of the dynamic route on this machine's CPU at the cost of near-tie token flips (parity rule:
:class:`ParityReport`).

Both unroll the greedy decoder for ``max_target_len`` steps with a self-attention KV cache.
Output ``[max_target_len, vocab]``: row t holds the decoder's logits at step t; rows after the end
token hold a one-hot pad (index 59), so Kaggle's argmax decoding drops them along with eos (61).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.data.landmarks import LandmarkSet
from aslfs_pl.model.seq2seq import Seq2Seq

log = logging.getLogger(__name__)

MODEL_FILE = "model.tflite"
ARGS_FILE = "inference_args.json"
ZIP_FILE = "submission.zip"


class ExportError(RuntimeError):
    """Export failed; the message names the stage (load, check, trace, export, lower, write) and
    the cause."""


@contextlib.contextmanager
def stage(name: str):
    """Re-raise any failure inside the block as :class:`ExportError` naming the stage."""
    t0 = time.perf_counter()
    log.info("export: %s ...", name)
    try:
        yield
    except ExportError:
        raise
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ExportError(f"[{name}] {type(err).__name__}: {first[:500]}") from err
    log.info("export: %s done in %.1fs", name, time.perf_counter() - t0)


class KaggleModel(nn.Module):
    """The deployment signature around a trained :class:`Seq2Seq`.

    ``forward(inputs)``: ``inputs`` (T, C) float32 raw columns in ``selected_columns`` order, any
    T >= 0, NaN allowed -> ``{"outputs": (max_target_len, vocab)}``.

    Args:
        net: the trained network (its state_dict is used unchanged).
        buffer_frames: most frames read from one input; frames after it are ignored (Kaggle's
            longest sequence has 807). Must be >= the network's ``max_frames``.
    """

    def __init__(self, net: Seq2Seq, buffer_frames: int = 1024):
        super().__init__()
        self.net = net.eval()
        cfg = net.config
        if buffer_frames < cfg.max_frames:
            raise ValueError(f"buffer_frames {buffer_frames} < max_frames {cfg.max_frames}")
        self.buffer_frames = buffer_frames
        self.max_frames = cfg.max_frames
        self.num_columns = cfg.num_columns
        self.num_axes = cfg.num_axes
        self.steps = cfg.max_target_len
        pad = torch.zeros(cfg.vocab_size)
        pad[vocab.PAD] = 1e4
        self.register_buffer("pad_row", pad, persistent=False)

    def fixed_frames(self, inputs: Tensor) -> Tensor:
        """(T, C) -> (max_frames, C): resample or NaN-pad, with static shapes only."""
        m, f = self.buffer_frames, self.max_frames
        nan_rows = torch.full((m, self.num_columns), float("nan"), dtype=inputs.dtype)
        x = torch.cat([inputs, nan_rows], 0)[:m]  # (M, C): the first M frames, NaN after T
        # 1 for every input row, 0 for the appended ones: derived from the data so it follows
        # the run-time T (isnan(v) | ~isnan(v) is true for every value, NaN included).
        # No reshape may touch a T-sized tensor: the converter would freeze its traced shape.
        real = (torch.isnan(inputs) | ~torch.isnan(inputs)).any(dim=1).to(inputs.dtype)  # (T,)
        real = torch.cat([real, torch.zeros(m, dtype=inputs.dtype)], 0)[:m]  # (M,)
        t = real.sum()  # number of frames read (<= M)
        i = torch.arange(f, dtype=inputs.dtype)
        # Same indices as fit_length: (i * T) // F, computed in float with a half-step guard.
        resampled = torch.floor((i * t + 0.5) / f)
        idx = torch.where(t > f, resampled, i).to(torch.int32)
        return x[idx]  # (F, C)

    def forward(self, inputs: Tensor) -> dict[str, Tensor]:
        x = self.fixed_frames(inputs).unsqueeze(0)  # (1, F, C)
        memory, valid = self.net.encode(x)
        tokens, logits = self.net.decoder.greedy(
            memory, valid, self.steps, argmax=lambda v: torch.topk(v, 1).indices[..., 0]
        )  # (1, L), (1, L, V)
        ended = torch.cumsum((tokens == vocab.EOS).to(torch.int32), dim=1) - (
            tokens == vocab.EOS
        ).to(torch.int32)  # (1, L): > 0 after the end token
        out = torch.where((ended > 0).unsqueeze(-1), self.pad_row, logits)
        return {"outputs": out[0]}


ROUTES = ("dynamic", "static")
# Stored weights. fp16: halves the file, same speed as fp32 (XNNPACK dequantises at load).
# int8: dynamic-range quantisation (per-channel int8 weights, activations quantised on the fly
# by the kernels): a quarter of the file and about half the latency; may flip near-tie tokens.
WEIGHTS = ("fp16", "fp32", "int8")
# Logit tolerance of the parity check per weight type. Measured: fp16 moves logits by ~1e-3;
# int8 by ~0.02 on the tests' tiny network and up to 0.3 on the trained quickstart model.
TOLERANCE = {"fp32": 1e-4, "fp16": 5e-2, "int8": 0.5}
MAX_EXPORT_FRAMES = 1 << 16  # bound given to torch.export; the TFLite input accepts any length


@dataclass
class ExportResult:
    model_path: Path
    args_path: Path
    zip_path: Path
    size_bytes: int
    seconds: float
    route: str
    weights: str


@contextlib.contextmanager
def _quiet():
    """Silence the converter's Python-level chatter (quantiser report, progress bars)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def deployment_module(net: Seq2Seq, route: str = "dynamic", buffer_frames: int = 1024) -> nn.Module:
    """The module with Kaggle's signature for ``route`` (``buffer_frames``: static route only)."""
    if route == "dynamic":
        from aslfs_pl.export_dynamic import DynamicKaggleModel

        return DynamicKaggleModel(net).eval()
    if route == "static":
        return KaggleModel(net, buffer_frames).eval()
    raise ExportError(f"[check] route {route!r} is not one of {ROUTES}")


def _dynamic_program(wrapper: nn.Module, sample: Tensor, frames_dim: dict):
    """torch.export with a symbolic frame axis, then litert-torch's TFLite-native decompositions."""
    from litert_torch import fx_infra
    from litert_torch.backend.experimental import torch_tfl

    with torch.no_grad():
        ep = torch.export.export(
            wrapper, args=(), kwargs={"inputs": sample}, dynamic_shapes=frames_dim, strict=False
        )
    ep = fx_infra.safe_run_decompositions(ep, fx_infra.decomp.pre_lower_decomp())
    ep = ep.run_decompositions(torch_tfl.decomps)
    module = ep.module()
    module.training = False  # (an exported module refuses .eval(); this is what eval() sets)
    return module


def convert(
    net: Seq2Seq,
    selected_columns: list[str],
    out_dir: str | Path,
    weights: str = "fp16",
    route: str = "dynamic",
    buffer_frames: int = 1024,
    sample_frames: int | None = None,
) -> ExportResult:
    """Convert ``net`` to ``out_dir/model.tflite`` and write inference_args.json + submission.zip.

    ``weights``: one of :data:`WEIGHTS` (fp16 by default).

    Raises:
        ExportError: naming the stage that failed.
    """
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    t0 = time.perf_counter()
    out = Path(out_dir)
    if len(selected_columns) != net.config.num_columns:
        raise ExportError(
            f"[check] {len(selected_columns)} selected columns but the model reads "
            f"{net.config.num_columns}"
        )
    if weights not in WEIGHTS:
        raise ExportError(f"[check] weights {weights!r} is not one of {WEIGHTS}")
    # Static route: the traced length must be shorter than the buffer: with a longer one the
    # converter folds cat(inputs, NaN rows)[:M] into inputs[:M], which breaks shorter inputs.
    sample_frames = sample_frames or max(1, min(100, buffer_frames // 2))
    if route == "static" and not 0 < sample_frames < buffer_frames:
        raise ExportError(f"[check] sample_frames {sample_frames} must lie in (0, {buffer_frames})")
    with stage("trace"):
        import litert_torch

        wrapper = deployment_module(net, route, buffer_frames)
        rng = np.random.default_rng(0)
        sample = rng.uniform(0, 1, (sample_frames, net.config.num_columns)).astype(np.float32)
        sample[::7, :42] = np.nan
        sample_t = torch.from_numpy(sample)
        with torch.no_grad():
            wrapper(sample_t)  # fails here, with a clear stage, if the module itself is broken
    kwargs = {}
    if weights != "fp32":
        from litert_torch.generative.quantize import quant_recipes

        recipe = {"fp16": quant_recipes.full_fp16_recipe, "int8": quant_recipes.full_dynamic_recipe}
        kwargs["quant_config"] = recipe[weights]()
    if route == "dynamic":
        frames_dim = {"inputs": {0: torch.export.Dim("frames", min=0, max=MAX_EXPORT_FRAMES)}}
        with stage("export"):
            wrapper = _dynamic_program(wrapper, sample_t, frames_dim)
        kwargs["dynamic_shapes"] = frames_dim
    with stage("lower"), _quiet():
        edge = litert_torch.convert(wrapper, sample_kwargs={"inputs": sample_t}, **kwargs)
    with stage("write"):
        out.mkdir(parents=True, exist_ok=True)
        model_path = out / MODEL_FILE
        with _quiet():
            edge.export(str(model_path))
        args_path = out / ARGS_FILE
        args_path.write_text(json.dumps({"selected_columns": list(selected_columns)}))
        zip_path = out / ZIP_FILE
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(model_path, MODEL_FILE)
            z.write(args_path, ARGS_FILE)
    return ExportResult(
        model_path, args_path, zip_path, model_path.stat().st_size, time.perf_counter() - t0,
        route, weights,
    )  # fmt: skip


class TFLiteRunner:
    """Runs an exported model exactly as Kaggle's evaluator does.

    Args:
        path: a ``model.tflite``, a directory holding it (and inference_args.json), or a
            ``submission.zip``.
        num_threads: interpreter threads.
    """

    def __init__(self, path: str | Path, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        path = Path(path)
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                model_bytes = z.read(MODEL_FILE)
                self.selected_columns = json.loads(z.read(ARGS_FILE))["selected_columns"]
            self.interpreter = Interpreter(model_content=model_bytes, num_threads=num_threads)
        else:
            model = path / MODEL_FILE if path.is_dir() else path
            args = model.parent / ARGS_FILE
            self.selected_columns = (
                json.loads(args.read_text())["selected_columns"] if args.is_file() else None
            )
            self.interpreter = Interpreter(model_path=str(model), num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner("serving_default")

    def outputs(self, frames: np.ndarray) -> np.ndarray:
        """(T, C) float32 -> (L, K) outputs."""
        return self.runner(inputs=np.ascontiguousarray(frames, dtype=np.float32))["outputs"]

    def __call__(self, frames: np.ndarray) -> str:
        """Text of one sequence, decoded like Kaggle: argmax per row, indices >= 59 dropped."""
        return vocab.decode_kaggle(np.argmax(self.outputs(frames), axis=1))


@dataclass
class Trained:
    """A network rebuilt from a training checkpoint, with what the data module recorded."""

    net: Seq2Seq
    landmarks: LandmarkSet
    data_hparams: dict


def load_checkpoint(path: str | Path) -> Trained:
    """Rebuild the network (eval mode, CPU) and its landmark set from a Lightning checkpoint."""
    from aslfs_pl.task import Seq2SeqTask

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"[load] {path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
        task = Seq2SeqTask(**hparams)
        task.load_state_dict(ckpt["state_dict"])
    except Exception as err:
        raise ExportError(f"[load] {path}: not a loadable aslfs_pl checkpoint ({err})") from err
    data = dict(ckpt.get("datamodule_hyper_parameters", {}))
    landmarks = LandmarkSet(**{k: tuple(v) for k, v in data.get("landmarks", {}).items()})
    if landmarks.num_columns != task.net.config.num_columns:
        raise ExportError(
            f"[load] {path}: the recorded landmark set has {landmarks.num_columns} columns, the "
            f"model reads {task.net.config.num_columns}"
        )
    return Trained(task.net.eval(), landmarks, data)


@dataclass
class ParityRow:
    """One input length: TFLite vs PyTorch greedy decoding."""

    frames: int
    same_text: bool
    max_diff: float  # max |logit difference| over the rows both decoders computed from one prefix
    diverged_at: int | None  # first step whose token differs (None: same tokens to the end)
    margin: float  # PyTorch's logit margin between its token and TFLite's there (0 if none)


@dataclass
class ParityReport:
    """TFLite vs PyTorch at several lengths.

    Logits are compared up to PyTorch's end token, or up to and including the first step where
    the two decoders pick different tokens (after it they read different prefixes). Without
    ``allow_near_ties`` every token up to the end must be PyTorch's. With it a different token
    passes when the logits agree within the tolerance up to that step and PyTorch's own margin
    between its token and TFLite's is within the tolerance too: a near tie.
    """

    rows: list[ParityRow]
    tolerance: float
    allow_near_ties: bool = False

    def row_ok(self, row: ParityRow) -> bool:
        if row.max_diff > self.tolerance:
            return False
        if row.diverged_at is None:
            return row.same_text
        return self.allow_near_ties and row.margin <= self.tolerance

    @property
    def ok(self) -> bool:
        return all(self.row_ok(row) for row in self.rows)

    @property
    def same_texts(self) -> int:
        return sum(row.same_text for row in self.rows)

    def summary(self) -> str:
        rule = "near-tie flips allowed" if self.allow_near_ties else "texts must be equal"
        lines = [f"parity (tolerance {self.tolerance:g} on logits; {rule}):"]
        for row in self.rows:
            text = "equal" if row.same_text else (
                f"DIFFERENT from step {row.diverged_at} (PyTorch margin {row.margin:.3f})"
            )  # fmt: skip
            flag = "" if self.row_ok(row) else "  <- FAILED"
            lines.append(f"  T={row.frames:5d}: text {text}, max |diff| {row.max_diff:.2e}{flag}")
        lines.append(f"texts equal: {self.same_texts}/{len(self.rows)}")
        lines.append("parity: OK" if self.ok else "parity: FAILED")
        return "\n".join(lines)


def compare_decodings(
    frames: int, out: np.ndarray, ref_tokens: np.ndarray, ref_logits: np.ndarray
) -> ParityRow:
    """TFLite outputs (L, K) vs PyTorch's greedy tokens (L,) and logits (L, V) for one input."""
    picked = np.argmax(out, 1)
    same = vocab.decode_kaggle(picked) == vocab.decode(ref_tokens)
    compared = ~(np.cumsum(ref_tokens == vocab.EOS) - (ref_tokens == vocab.EOS) > 0)
    differ = np.flatnonzero(compared & (picked != ref_tokens))
    diverged_at, margin = None, 0.0
    if differ.size:
        diverged_at = int(differ[0])
        compared[diverged_at + 1 :] = False
        step = ref_logits[diverged_at]
        margin = float(step[ref_tokens[diverged_at]] - step[picked[diverged_at]])
    v = ref_logits.shape[1]
    diff = np.abs(out[compared, :v] - ref_logits[compared])
    return ParityRow(
        frames, bool(same), float(diff.max()) if diff.size else 0.0, diverged_at, margin
    )


def parity_report(
    net: Seq2Seq,
    model_path: str | Path,
    buffer_frames: int | None = None,
    weights: str = "fp16",
    lengths: tuple[int, ...] | None = None,
    seed: int = 0,
) -> ParityReport:
    """Run the TFLite file and the PyTorch greedy decoder on the same random inputs.

    Inputs hold NaN frames and NaN hands. The PyTorch side is the training path
    (``fit_length`` + ``Seq2Seq.generate``), so this also checks that the in-graph resampling
    and padding equal the data pipeline's. ``buffer_frames``: frames the model reads (the static
    route's buffer; None = all, as the dynamic route does). Tolerance from :data:`TOLERANCE`;
    int8 weights may flip near ties (see :class:`ParityReport`), fp16 and fp32 may not.
    """
    from aslfs_pl.data.features import fit_length

    if weights not in TOLERANCE:
        raise ValueError(f"weights {weights!r} is not one of {WEIGHTS}")
    runner = TFLiteRunner(model_path)
    f = net.config.max_frames
    lengths = lengths or (0, 1, 2, 17, f, f + 50, 1000)
    rng = np.random.default_rng(seed)
    c = net.config.num_columns
    rows = []
    for t in lengths:
        x = rng.uniform(0.2, 0.8, (t, c)).astype(np.float32)
        x[rng.random(t) < 0.1] = np.nan  # frames with nothing seen
        x[rng.random(t) < 0.3, : c // 4] = np.nan  # a hand missing
        out = runner.outputs(x)
        with torch.no_grad():
            ref_tokens, ref_logits = net.generate(
                torch.from_numpy(fit_length(x[:buffer_frames], f))[None]
            )
        rows.append(compare_decodings(t, out, ref_tokens[0].numpy(), ref_logits[0].numpy()))
    return ParityReport(rows, TOLERANCE[weights], allow_near_ties=weights == "int8")


def model_from_config(path: str | Path) -> tuple[Seq2Seq, LandmarkSet]:
    """A randomly initialised network (eval mode) and its landmark set from a training YAML."""
    import yaml

    from aslfs_pl.model.seq2seq import ModelConfig

    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    data = cfg.get("data") or {}
    landmarks = LandmarkSet(**{k: tuple(v) for k, v in (data.get("landmarks") or {}).items()})
    fields = set(ModelConfig.__dataclass_fields__)
    model = {k: v for k, v in (cfg.get("model") or {}).items() if k in fields}
    model |= {
        "num_columns": landmarks.num_columns,
        "num_axes": landmarks.num_axes,
        "max_frames": data.get("max_frames", 384),
        "max_target_len": data.get("max_target_len", 32),
    }
    return Seq2Seq(ModelConfig(**model)).eval(), landmarks
