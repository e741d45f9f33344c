"""What Kaggle's evaluator reads: the submission's file names and the model's signature.

``submission.zip`` holds ``model.tflite`` and ``inference_args.json`` (``{"selected_columns":
[...]}``) at its root; the evaluator calls the TFLite signature ``serving_default`` with one
input, ``inputs`` (T, C) float32, and reads one output, ``outputs`` (K, V), decoded by a per-row
argmax (indices of pad, sos and eos dropped). See ``../shared/KAGGLE.md`` for the whole contract.
"""

MODEL_FILE = "model.tflite"
ARGS_FILE = "inference_args.json"
ZIP_FILE = "submission.zip"
SIGNATURE = "serving_default"
#: The largest model file Kaggle takes, "40 MB": read as 40 MiB (the 1st place's accepted file of
#: two models was 39,988 KiB, 40.9e6 bytes, over 40e6).
MAX_MODEL_BYTES = 40 * 2**20
