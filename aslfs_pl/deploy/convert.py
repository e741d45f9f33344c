"""Conversion to TFLite and the Kaggle submission files.

``convert(net, selected_columns, out_dir)`` writes ``model.tflite``, ``inference_args.json`` and
``submission.zip``. Weights (:data:`WEIGHTS`): fp16 by default; fp32; or int8 dynamic-range
quantisation (int8 weights per output channel, activations quantised by the kernels at run time),
which halves the latency on a CPU at the cost of near-tie token flips (see
:mod:`aslfs_pl.deploy.parity`).

The pipeline (each stage timed and shown, see :class:`aslfs_pl.deploy.stages.Job`):

1. ``check``: settings, the output directory, and the network's export form
   (:class:`aslfs_pl.deploy.graph.KaggleModel`, built from each layer's twin);
2. ``trace``: ``torch.export`` with a symbolic frame axis;
3. ``decompose``: to TFLite-native ops (litert-torch's pre-lowering table and its ``torch_tfl``
   table, which is what lets a symbolic frame count lower);
4. ``lower``: litert-torch's FX passes, MLIR lowering, converter passes and quantisation;
5. ``write``: the files.

Stages 3-4 call litert-torch's converter steps directly (``litert_torch==0.10.0`` is pinned)
rather than ``litert_torch.convert``. Conversion time is retracing: every retrace of the program
(make_fx with a symbolic frame axis) costs ~3-4 ms per graph node on this machine, and the
unrolled decoder makes thousands of nodes (seed model: ~8,400). ``litert_torch.convert`` of the
exported program retraced it five more times (export again, pre-convert decompositions, a
canonicalising retrace, two pre-lowering passes); this pipeline retraces three times in all
(export, :func:`_decompose`, the lowering's pre-lowering pass): seven retraces before, three now. Layers keep the node count down
too (:mod:`aslfs_pl.export_ops`). Measured: docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aslfs_pl.deploy.contract import ARGS_FILE, MODEL_FILE, SIGNATURE, ZIP_FILE
from aslfs_pl.deploy.graph import KaggleModel
from aslfs_pl.deploy.stages import ExportError, Job
from aslfs_pl.model.seq2seq import Seq2Seq
from aslfs_pl.terminal import native_chatter_filtered

# Stored weights. fp16: halves the file, same speed as fp32 (XNNPACK dequantises at load).
# int8: dynamic-range quantisation: a quarter of the file and about half the latency.
WEIGHTS = ("fp16", "fp32", "int8")
MAX_EXPORT_FRAMES = 1 << 16  # bound given to torch.export; the TFLite input accepts any length
STAGES = ["check", "trace", "decompose", "lower", "write"]


@dataclass
class ExportResult:
    model_path: Path
    args_path: Path
    zip_path: Path
    size_bytes: int
    seconds: float
    weights: str
    stage_seconds: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def _quiet():
    """Silence the converter's Python-level chatter (quantiser report, progress bars)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


@contextlib.contextmanager
def _environment_kept():
    """Undo the converter's changes to the process environment. Its JAX lowering sets
    ``TPU_SKIP_MDS_QUERY``; left set, it makes torch-xla's TPU probe, which every later
    Lightning Trainer of the process runs, fail on a machine without a TPU."""
    environ = dict(os.environ)
    try:
        os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        yield
    finally:
        os.environ.clear()
        os.environ.update(environ)


def check_writable(out_dir: str | Path) -> Path:
    """Create ``out_dir`` if needed and prove a file can be written there (before converting).

    Raises:
        ExportError: ``[check]``, with the reason.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ExportError(f"[check] cannot write to {out}: {err.strerror or err}") from err
    return out


def _quant_config(weights: str):
    if weights == "fp32":
        return None
    from litert_torch.generative.quantize import quant_recipes

    recipe = {"fp16": quant_recipes.full_fp16_recipe, "int8": quant_recipes.full_dynamic_recipe}
    return recipe[weights]()


def sample_input(num_columns: int, frames: int = 100) -> torch.Tensor:
    """The traced example: random frames, some NaN (the frame axis stays symbolic)."""
    rng = np.random.default_rng(0)
    sample = rng.uniform(0, 1, (frames, num_columns)).astype(np.float32)
    sample[::7, : num_columns // 4] = np.nan
    return torch.from_numpy(sample)


def convert(
    net: Seq2Seq,
    selected_columns: list[str],
    out_dir: str | Path,
    weights: str = "fp16",
    progress: bool | None = None,
    decoding: str = "attention",
) -> ExportResult:
    """Convert ``net`` to ``out_dir/model.tflite`` and write inference_args.json + submission.zip.

    Args:
        net: the trained network (read, not changed).
        selected_columns: the Kaggle columns the model reads, in order.
        out_dir: output directory (created).
        weights: one of :data:`WEIGHTS`.
        progress: show the stage display (None: when stderr is a terminal).
        decoding: the route in the graph, a registered decoding
            (:mod:`aslfs_pl.model.decoding`).

    Raises:
        ExportError: naming the stage that failed.
    """
    with _environment_kept(), Job(f"convert {weights}", STAGES, progress) as job:
        with job.stage("check"):
            if weights not in WEIGHTS:
                raise ExportError(f"[check] weights {weights!r} is not one of {WEIGHTS}")
            if len(selected_columns) != net.config.num_columns:
                raise ExportError(
                    f"[check] {len(selected_columns)} selected columns but the model reads "
                    f"{net.config.num_columns}"
                )
            out = check_writable(out_dir)
            wrapper = KaggleModel(net, decoding).eval()
            sample = sample_input(net.config.num_columns)
            with torch.no_grad():
                wrapper(sample)  # fails here, with a clear stage, if the graph itself is broken
        dims = {"inputs": {0: torch.export.Dim("frames", min=0, max=MAX_EXPORT_FRAMES)}}
        with job.stage("trace"), torch.no_grad():
            program = torch.export.export(
                wrapper, args=(), kwargs={"inputs": sample}, dynamic_shapes=dims, strict=False
            )
        with job.stage("decompose"), native_chatter_filtered():
            program = _decompose(program)
        with job.stage("lower"), _quiet(), native_chatter_filtered():
            tflite = _lower(program, wrapper, sample, dims, weights)
        with job.stage("write"):
            model_path = out / MODEL_FILE
            model_path.write_bytes(tflite)
            args_path = write_inference_args(out, selected_columns)
            zip_path = write_submission(out, model_path, args_path)
    return ExportResult(
        model_path,
        args_path,
        zip_path,
        model_path.stat().st_size,
        job.elapsed,
        weights,
        dict(job.seconds),
    )


def _decompose(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """One retrace to TFLite-native ops.

    The table is torch.export's default one (it names the composite ops: matmul, softmax,
    conv1d, ...), then litert-torch's pre-lowering table, then its torch_tfl table. With the
    last two alone, composite ops stay whole and reach the lowering, which cannot lower some of
    them with a symbolic frame count; applied one after the other they need two retraces. This
    gives the same graph as the two (same ops, counted) in one.
    """
    from litert_torch import fx_infra
    from litert_torch.backend.experimental import torch_tfl

    program = fx_infra.graph_utils.reset_from_node_meta(program)
    table = dict(torch.export.default_decompositions())
    table.update(fx_infra.decomp.pre_lower_decomp())
    table.update(torch_tfl.decomps)
    return fx_infra.safe_run_decompositions(program, table, can_skip=False)


def _lower(program, wrapper, sample, dims, weights: str) -> bytes:
    """litert-torch's converter steps after its export: FX passes, lowering, quantisation.

    The FX passes are litert-torch's list (``_convert.core._run_convert_passes``) without
    ``OptimizeLayoutTransposesPass`` and ``CanonicalizePass``: the first rewrites the depthwise
    convolutions to NHWC through Python wrappers, which forces the second to retrace the whole
    program, and the converter's own passes give the same TFLite ops without them (measured:
    identical op counts, DEPTHWISE_CONV_2D and TRANSPOSE included).
    """
    from litert_torch import fx_infra
    from litert_torch._convert import fx_passes, litert_converter, signature
    from litert_torch.generative import fx_passes as generative_fx_passes

    _register_size_floordiv()
    program = generative_fx_passes.run_generative_passes(program)
    passes = [
        fx_passes.LowerTorchAOPass(),
        fx_passes.EliminateDeadCodePass(),
        fx_passes.ReduceViewRankPass(),
        fx_passes.BuildAtenCompositePass(),
        fx_passes.RemoveNonUserOutputsPass(),
        fx_passes.CastInputsBf16ToF32Pass(),
    ]
    program = fx_infra.run_passes(program, passes)
    for node in program.graph.nodes:
        # tensor names in the file are built from the module path of each op; the twins'
        # nesting makes them ~150 bytes each (+0.8 MB on the seed model) for no use at run time
        node.meta["nn_module_stack"] = {}
    sig = signature.Signature(SIGNATURE, wrapper, (), {"inputs": sample}, dims)
    exporter = litert_converter.exported_programs_to_flatbuffer(
        [program], [sig], quant_config=_quant_config(weights)
    )
    return exporter.to_bytes()


def _register_size_floordiv() -> None:
    """Teach litert-torch's lowering ``//`` of symbolic sizes.

    It lowers ``+``, ``-`` and ``*`` of sizes (``lowerings/_basic.py``) but not ``//``, which the
    merged frame count of a Squeezeformer encoder needs (``ceil(n / f)`` frames, see
    :mod:`aslfs_pl.model.encoders.conformer`). Sizes are never negative, so the integer division that
    truncates (StableHLO's) is the floor division.
    """
    import operator

    from litert_converter.mlir.dialects import stablehlo
    from litert_torch.backend.lowerings import registry, utils

    def floordiv(lctx, self, other):
        if isinstance(self, int):
            self = utils.splat(self, other.type.element_type, other.type.shape)
        if isinstance(other, int):
            other = utils.splat(other, self.type.element_type, self.type.shape)
        return stablehlo.divide(self, other)

    registry.global_registry.register(operator.floordiv, floordiv)


def write_inference_args(out: Path, selected_columns: list[str]) -> Path:
    path = out / ARGS_FILE
    path.write_text(json.dumps({"selected_columns": list(selected_columns)}))
    return path


def write_submission(out: Path, model_path: Path, args_path: Path) -> Path:
    """``submission.zip`` with the two files Kaggle reads, at its root."""
    path = out / ZIP_FILE
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(model_path, MODEL_FILE)
        z.write(args_path, ARGS_FILE)
    return path
