"""The built wheel: one ``edge_infer`` namespace, no stray top-level modules, a light base."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["pyproject.toml", "README.md", "runtime", "train", "export", "devices"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools")
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:  # build from a copy: the test never writes into the checkout
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(item, src / name)
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                             "--no-build-isolation", "-q", "-w", str(out), str(src)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{result.stderr[-2000:]}")
    (whl,) = out.glob("edge_infer-*.whl")
    return whl


def test_only_the_edge_infer_namespace_is_installed(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"edge_infer"}
    assert "edge_infer/__init__.py" not in names  # a PEP 420 namespace
    for pkg in ("runtime", "train", "export", "devices"):
        assert f"edge_infer/{pkg}/__init__.py" in names
    assert "edge_infer/runtime/cli/run.py" in names
    assert "edge_infer/runtime/inputs/images.py" in names


def test_every_source_package_is_in_the_wheel(wheel):
    """A sub-package missing from pyproject's list would vanish from real installs."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for top in ("runtime", "train", "export", "devices"):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.relative_to(ROOT / top).parent.as_posix()
            module = f"edge_infer/{top}" + ("" if rel == "." else f"/{rel}")
            assert f"{module}/__init__.py" in names, f"{module} is not packaged"
            for source in init.parent.glob("*.py"):
                assert f"{module}/{source.name}" in names


def test_base_dependencies_are_onnxruntime_numpy_click(wheel):
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(meta_name).decode())
        entry = next(n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt"))
        entry_points = zf.read(entry).decode()
    requires = meta.get_all("Requires-Dist") or []
    base = sorted(r.split(">")[0].split("=")[0].split("<")[0].strip()
                  for r in requires if "extra ==" not in r)
    assert base == ["click", "numpy", "onnxruntime"]
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"image", "train", "dev"} <= extras
    train = [r for r in requires if 'extra == "train"' in r]
    assert any(r.startswith(("tensorflow", "tf2onnx", "onnx", "sympy")) for r in train)
    assert "edge-infer = edge_infer.runtime.cli:main" in entry_points
