"""The shipped example (the README's main job) gives the right labels, and its script rebuilds it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer.runtime import Model
from edge_infer.runtime.cli import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_readme_main_job_labels_every_image_correctly():
    pytest.importorskip("PIL")
    result = CliRunner().invoke(cli, ["run", str(EXAMPLES / "lines.onnx"),
                                      str(EXAMPLES / "images"), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    best = {s: p[0] for s, p in zip(doc["samples"], doc["predictions"])}
    assert len(best) == 4
    for sample, pred in best.items():
        assert sample.startswith(pred["label"]), (sample, pred)
        assert pred["score"] > 0.9


def test_the_script_rebuilds_the_same_model(tmp_path):
    pytest.importorskip("PIL")
    spec = importlib.util.spec_from_file_location("make_lines_model",
                                                  EXAMPLES / "make_lines_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import onnx

    rebuilt = tmp_path / "lines.onnx"
    onnx.save(module.build_model(), str(rebuilt))
    x = np.random.default_rng(0).random((3, 16, 16, 1), dtype=np.float32)
    np.testing.assert_array_equal(Model(rebuilt).run(x)["probabilities"],
                                  Model(EXAMPLES / "lines.onnx").run(x)["probabilities"])
    assert Model(rebuilt).metadata == Model(EXAMPLES / "lines.onnx").metadata
