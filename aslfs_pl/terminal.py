"""What a person sees at the terminal: the project's progress lines, not library chatter.

The commands (``scripts/fit.py``, ``export_tflite.py``, ``evaluate.py``, ``predict.py``) call
:func:`quiet_logging` first; the few native libraries that print to the process's stderr
directly (TensorFlow Lite's interpreter, the converter's absl logging) run inside
:func:`native_chatter_filtered`. ``tests/test_terminal.py`` names each line a command must not
print.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

#: Lines native libraries print on their own that say nothing to a user of this project: absl's
#: preamble before its logging starts, TensorFlow's and XLA's informational lines (``I0000``
#: ...), the TFLite interpreter's note that it uses XNNPACK (it always does on a CPU).
NATIVE_CHATTER = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|I\d{4} [\d:. ]+\S+:\d+\] "
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.)"
)


def quiet_logging() -> None:
    """The project's own progress lines (``aslfs_pl`` at INFO) and every library's warnings and
    errors; not Lightning's informational lines (the seed, the devices it did not find, tips):
    the project says what is trained on what itself (:class:`aslfs_pl.callbacks.RunReport`)."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("aslfs_pl").setLevel(logging.INFO)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def native_chatter_filtered() -> Iterator[None]:
    """Run the block with the process's stderr (file descriptor 2, where native code writes)
    caught, then write back every line of it except :data:`NATIVE_CHATTER`'s, so a native
    warning or error still shows (after the block; a progress display paused meanwhile redraws
    itself)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            text = caught.read().decode(errors="replace")
            # lines with terminal control codes are a progress display's own redraws
            kept = [
                line
                for line in text.splitlines()
                if line.strip() and not NATIVE_CHATTER.match(line) and "\x1b" not in line
            ]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
