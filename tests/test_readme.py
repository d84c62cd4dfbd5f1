"""The README's command reference is generated from --help and must not drift."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("readme_help", ROOT / "scripts" / "readme_help.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_command_reference_matches_help():
    module = _script()
    current = (ROOT / "README.md").read_text(encoding="utf-8")
    assert module.render(current) == current, "run: python scripts/readme_help.py"


def test_every_command_is_documented():
    from edge_infer.runtime.cli import COMMANDS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in COMMANDS:
        assert f"<!-- help: edge-infer {name} -->" in readme


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "\nscripts/test.sh\n" in readme
    assert "exec scripts/test.sh" in ci
