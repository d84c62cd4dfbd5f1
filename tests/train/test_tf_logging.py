"""The train/export commands turn TensorFlow's C++ logging down, unless the user chose a level."""

from __future__ import annotations

import os

from edge_infer.train.tf_logging import quiet_tensorflow


def test_hides_up_to_errors_by_default(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"


def test_keeps_the_users_level(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def _in_child(code: str, **env: str):
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, timeout=300)


def test_held_stderr_drops_the_noise_and_passes_the_rest_on():
    """C++ libraries write to file descriptor 2, past sys.stderr: that is what is filtered;
    what was held is written back even when the block raises."""
    done = _in_child(
        "import os\n"
        "from edge_infer.train.tf_logging import stderr_without\n"
        "try:\n"
        "    with stderr_without((b'noise',)):\n"
        "        os.write(2, b'kept 1\\nsome noise here\\nkept 2\\n')\n"
        "        raise ValueError('boom')\n"
        "except ValueError:\n"
        "    os.write(2, b'after\\n')\n")
    assert done.returncode == 0
    assert done.stderr == "kept 1\nkept 2\nafter\n"


def test_loading_tensorflow_leaves_out_its_import_lines():
    import pytest

    pytest.importorskip("tensorflow")
    code = ("from edge_infer.train.tf_logging import quiet_tensorflow\n"
            "quiet_tensorflow(load=True)\n"
            "import sys; print('tensorflow' in sys.modules)\n")
    done = _in_child(code)
    assert done.returncode == 0 and done.stdout.strip() == "True"
    assert "absl::InitializeLog" not in done.stderr and "cudart_stub" not in done.stderr
    assert "oneDNN custom operations" not in done.stderr  # printed on AVX-512 CPUs
    # Asked to see everything, the user sees what a plain import prints (which depends on the
    # machine): TensorFlow is not loaded behind the filter.
    shown = _in_child(code + "import tensorflow\n", TF_CPP_MIN_LOG_LEVEL="0")
    plain = _in_child("import tensorflow", TF_CPP_MIN_LOG_LEVEL="0")
    assert shown.returncode == 0 and shown.stdout.strip() == "False"
    assert ("absl::InitializeLog" in shown.stderr) == ("absl::InitializeLog" in plain.stderr)
