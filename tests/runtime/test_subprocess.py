"""The real console script in subprocesses: what it imports, and that it behaves end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HEAVY = ("tensorflow", "tf2onnx", "onnx", "keras", "torch")


def _console_script() -> str:
    found = shutil.which("edge-infer", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the edge-infer console script is not installed next to this Python")
    return found


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("EDGE_INFER_DEBUG", None)
    return env


def _modules_after(code: str) -> set[str]:
    """Modules loaded by running ``code`` in a fresh interpreter."""
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env=_env())
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _heavy(mods: set[str]) -> list[str]:
    return sorted(m for m in mods if m.split(".")[0] in HEAVY)


def test_running_a_model_imports_no_training_stack(models, tmp_path):
    path = models.classifier(labels=["a", "b", "c"])
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    mods = _modules_after(
        "from edge_infer.runtime.cli import main\n"
        "try:\n"
        f"    main(['run', {str(path)!r}, {str(tmp_path / 'x.npy')!r}, '-f', 'json'])\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n")
    assert "onnxruntime" in mods
    assert _heavy(mods) == []
    # No image or text given: neither Pillow nor those loaders are imported.
    assert "PIL" not in mods
    assert "edge_infer.runtime.inputs.images" not in mods
    assert "edge_infer.runtime.inputs.text" not in mods


def test_run_path_imports_neither_pathlib_nor_dataclasses(models, tmp_path):
    """Cold start (issue 5): each costs milliseconds that a bare onnxruntime script does not
    pay. Compared with what numpy and onnxruntime import themselves (an editable install's
    import hook brings pathlib in at startup; a regular install does not)."""
    path = models.classifier(labels=["a", "b", "c"])
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    baseline = _modules_after("import numpy, onnxruntime")
    mods = _modules_after(
        "from edge_infer.runtime.cli import main\n"
        "try:\n"
        f"    main(['run', {str(path)!r}, {str(tmp_path / 'x.npy')!r}])\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n")
    assert "edge_infer.runtime.records" in mods
    added = mods - baseline
    assert "dataclasses" not in added
    assert "pathlib" not in added


def test_library_use_imports_no_training_stack(models):
    path = models.classifier()
    mods = _modules_after(
        "import numpy as np\nfrom edge_infer.runtime import Model\n"
        f"Model({str(path)!r}).run(np.ones((1, 4), np.float32))\n")
    assert _heavy(mods) == []


def test_info_and_help_do_not_load_onnxruntime(models):
    path = models.classifier()
    mods = _modules_after(
        "from edge_infer.runtime.cli import main\n"
        "for args in (['--help'], ['info', " + repr(str(path)) + "]):\n"
        "    try:\n        main(args)\n    except SystemExit:\n        pass\n")
    assert "onnxruntime" not in mods and _heavy(mods) == []


def test_console_script_end_to_end(models, write_png):
    exe = _console_script()
    path = models.image_cnn(labels=["zero", "one", "two"])
    png = write_png("d.png", np.eye(8) * 255)
    out = subprocess.run([exe, "run", str(path), str(png), "--format", "json"],
                         capture_output=True, text=True, env=_env())
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["predictions"][0][0]["label"] in ("zero", "one", "two")


def test_console_script_error_is_one_line_without_traceback(tmp_path):
    exe = _console_script()
    (tmp_path / "m.onnx").write_text("not a model")
    out = subprocess.run([exe, "run", str(tmp_path / "m.onnx"), "x.npy"], capture_output=True,
                         text=True, env=_env())
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    env = _env() | {"EDGE_INFER_DEBUG": "1"}
    out = subprocess.run([exe, "run", str(tmp_path / "m.onnx"), "x.npy"], capture_output=True,
                         text=True, env=env)
    assert out.returncode == 1 and "Traceback" in out.stderr


def test_console_script_reads_stdin(models):
    exe = _console_script()
    import io

    buf = io.BytesIO()
    np.save(buf, np.ones((3, 4), np.float32))
    out = subprocess.run([exe, "run", str(models.classifier()), "-", "-f", "npy"],
                         input=buf.getvalue(), capture_output=True, env=_env())
    assert out.returncode == 0, out.stderr
    assert np.load(io.BytesIO(out.stdout)).shape == (3, 3)
