"""TensorFlow's start-up chatter, turned down for the commands that load it, in their process
only (the runtime never loads TensorFlow, and a library user's settings are left alone)."""

from __future__ import annotations

import os


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ log lines up to ERROR (``TF_CPP_MIN_LOG_LEVEL=3``).

    Why ERROR too: on a machine without a GPU, TensorFlow logs ``failed call to cuInit`` as an
    error on every start and then runs on the CPU as intended, which reads as a failure in the
    middle of a good run. Real failures still raise Python exceptions. A value the user set is
    kept (``TF_CPP_MIN_LOG_LEVEL=0`` shows everything). The few lines absl writes before its
    logging is initialised ignore the setting (fixed upstream in tensorflow PR #102212).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
