"""TensorFlow's start-up chatter, turned down for the commands that load it, in their process
only (the runtime never loads TensorFlow, and a library user's settings are left alone)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

# What `import tensorflow` writes to stderr on every start, twice (two libraries, each with its
# own absl), before TF_CPP_MIN_LOG_LEVEL can apply: absl's note about logging before it is
# initialised, the CUDA stub's INFO line that a machine without a GPU will use the CPU, and, on
# CPUs with AVX-512 (the VNNI Xeon), the INFO line that oneDNN's kernels are on and results may
# differ in rounding (edge-infer's parity check measures that on the exported model).
IMPORT_NOISE = (b"All log messages before absl::InitializeLog() is called are written to STDERR",
                b"cudart_stub.cc:", b"oneDNN custom operations are on")


def quiet_tensorflow(load: bool = False) -> None:
    """Hide TensorFlow's C++ log lines up to ERROR (``TF_CPP_MIN_LOG_LEVEL=3``).

    Why ERROR too: on a machine without a GPU, TensorFlow logs ``failed call to cuInit`` as an
    error on every start and then runs on the CPU as intended, which reads as a failure in the
    middle of a good run. Real failures still raise Python exceptions. A value the user set is
    kept (``TF_CPP_MIN_LOG_LEVEL=0`` shows everything).

    The lines absl writes before its logging is initialised ignore the setting. With ``load``
    (commands that need TensorFlow anyway), TensorFlow is imported here with those lines taken
    out of what it writes to stderr; everything else it writes is passed on.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if load and "tensorflow" not in sys.modules and os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0":
        with stderr_without(IMPORT_NOISE):
            import tensorflow  # noqa: F401


@contextlib.contextmanager
def stderr_without(noise: tuple[bytes, ...]) -> Iterator[None]:
    """Within the block, what is written to file descriptor 2 (C++ libraries write there, not
    to ``sys.stderr``) is held, then written back without the lines that contain one of
    ``noise``; held output is written back even when the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = b"".join(line for line in held if not any(n in line for n in noise))
            if kept:
                os.write(2, kept)
