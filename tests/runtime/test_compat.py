"""The onnxruntime release a model needs: recorded in the file, found in its operators, and
told to the user when the installed release is older."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edge_infer.runtime import Model, ModelRunError, OlderRuntimeWarning
from edge_infer.runtime.cli import cli
from edge_infer.runtime.compat import (KEY_REQUIRES, Requirement, graph_requirements,
                                       loading_hint, older_release_plan, release,
                                       requirements, to_prop)
from edge_infer.runtime.modelfile import read_model_info

from .conftest import save


def needs(version: str, purpose: str = "speed", disable: tuple[str, ...] = ()
          ) -> dict[str, str]:
    return {KEY_REQUIRES: to_prop([Requirement(version, purpose, "a reason", disable)])}


def test_releases_compare_by_their_numbers():
    assert release("1.17.3") == (1, 17, 3) < release("1.19") == (1, 19)
    assert release("1.24.0.dev20250101") == (1, 24, 0)
    assert release("1.20.1+cu12") == (1, 20, 1)
    assert release("1.9.0") < release("1.16.3")  # numbers, not strings


def test_a_need_for_speed_the_installed_release_misses_is_a_warning(models):
    later = models.classifier("later.onnx", metadata=needs("99.0"))
    with pytest.warns(OlderRuntimeWarning, match=r"later.onnx needs onnxruntime >= 99.0 for its "
                      rf"speed \(a reason\); this is onnxruntime {ort.__version__}"):
        model = Model(later)
    assert model.run(np.ones((1, 4), np.float32))["y"].shape == (1, 3)
    met = models.classifier("met.onnx", metadata=needs("1.0"))
    broken = models.classifier("broken.onnx", metadata={KEY_REQUIRES: "[{not json"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Model(met)
        Model(broken)  # the entry only adds advice: a bad one is ignored


def _with_identity(path, metadata):
    """x -> Identity -> Relu -> y: onnxruntime's Level1 rules drop the Identity."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["same"], name="keep/Identity"),
         helper.make_node("Relu", ["same"], ["y"], name="relu/Relu")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    return save(graph, path, metadata)


@pytest.mark.parametrize("version, kept", [("99.0", True), ("1.0", False)])
def test_on_an_older_release_the_session_is_made_without_the_optimizers_named(
        tmp_path, version, kept):
    """A need for speed that names optimizers to disable: on an older release the runtime
    makes the session without them, and does not warn (the speed is given back); on a release
    that meets it, nothing changes."""
    import onnx

    path = _with_identity(tmp_path / "m.onnx",
                          needs(version, disable=("Level1_RuleBasedTransformer",)))
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = Model(path, session_options=options)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimised.onnx")).graph.node]
    assert ("Identity" in ops) is kept, ops
    x = np.array([[-1, 0, 2, -3]], np.float32)
    np.testing.assert_array_equal(model.run(x)["y"], np.maximum(x, 0))


def test_the_older_release_plan_disables_or_warns(models):
    both = {KEY_REQUIRES: to_prop([Requirement("1.19", "speed", "a", ("A", "B")),
                                   Requirement("1.20", "speed", "b", ("B",)),
                                   Requirement("1.21", "speed", "c"),
                                   Requirement("1.24", "loading", "d", ("C",))])}
    disable, lines = older_release_plan(both, "1.18.1", "m.onnx")
    assert disable == ["A", "B"]  # each once; a need to load is not a matter of speed
    assert lines == ["m.onnx needs onnxruntime >= 1.21 for its speed (c); this is onnxruntime "
                     "1.18.1, where it may run slower than its float32 model (pip install -U "
                     "onnxruntime)"]
    assert older_release_plan(both, "1.21.0", "m.onnx") == ([], [])


def test_the_cli_prints_the_warning_and_still_runs(models, tmp_path):
    later = models.classifier("later.onnx", metadata=needs("99.0"))
    x = tmp_path / "x.npy"
    np.save(x, np.ones((1, 4), np.float32))
    result = CliRunner().invoke(cli, ["run", str(later), str(x)])
    assert result.exit_code == 0, result.output
    assert "warning: later.onnx needs onnxruntime >= 99.0 for its speed" in result.stderr


def _unloadable(path, metadata):
    """A graph onnxruntime refuses: an operator of a domain it does not know."""
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    helper.set_model_props(model, metadata)
    import onnx

    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("metadata, hint", [
    (needs("99.0", "loading"),
     rf"; it needs onnxruntime >= 99.0 to load \(a reason\), and this is onnxruntime "
     rf"{ort.__version__}: pip install -U onnxruntime$"),
    ({"edge_infer.source": json.dumps({"onnxruntime": "99.1.0"})},
     rf"; it was made with onnxruntime 99.1.0, and this is {ort.__version__}: a later "
     r"onnxruntime may run it \(pip install -U onnxruntime\)$"),
    ({"edge_infer.source": json.dumps({"onnxruntime": "1.16.0"})}, r"Frobnicate[^;]*$")])
def test_onnxruntimes_refusal_names_the_release_the_model_needs(tmp_path, metadata, hint):
    path = _unloadable(tmp_path / "m.onnx", metadata)
    with pytest.raises(ModelRunError, match=hint) as caught:
        Model(path)
    assert str(caught.value).startswith(f"onnxruntime could not load {path}: ")


def _conv_integer(path, weight_type):
    w = np.ones((2, 1, 3, 3), np.int8 if weight_type == TensorProto.INT8 else np.uint8)
    graph = helper.make_graph(
        [helper.make_node("ConvInteger", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 1, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, ["N", 2, 3, 3])],
        [numpy_helper.from_array(w, "w")])
    return save(graph, path)


def test_convinteger_with_int8_weights_needs_124_to_load(tmp_path):
    """onnxruntime 1.16.3 to 1.23.2 refuse it (benchmarks/ort_versions.py)."""
    int8 = read_model_info(_conv_integer(tmp_path / "int8.onnx", TensorProto.INT8))
    assert graph_requirements(int8) == [Requirement("1.24", "loading",
                                                    "ConvInteger with int8 weights")]
    assert "it needs onnxruntime >= 1.24 to load" in loading_hint(int8, "1.23.2")
    assert loading_hint(int8, "1.24.4") == ""
    uint8 = read_model_info(_conv_integer(tmp_path / "uint8.onnx", TensorProto.UINT8))
    assert graph_requirements(uint8) == [] and loading_hint(uint8, "1.16.3") == ""
    # what the file records and what its operators need, each once
    recorded_too = _conv_integer(tmp_path / "both.onnx", TensorProto.INT8)
    import onnx

    proto = onnx.load(str(recorded_too))
    helper.set_model_props(proto, {KEY_REQUIRES: to_prop(graph_requirements(int8))})
    onnx.save(proto, str(recorded_too))
    assert requirements(read_model_info(recorded_too)) == graph_requirements(int8)


def test_info_shows_what_the_model_needs(models, tmp_path):
    path = _conv_integer(tmp_path / "int8.onnx", TensorProto.INT8)
    text = CliRunner().invoke(cli, ["info", str(path)])
    assert text.exit_code == 0, text.output
    assert "needs       onnxruntime >= 1.24 to load (ConvInteger with int8 weights)" \
        in text.output
    data = json.loads(CliRunner().invoke(cli, ["info", str(path), "--format", "json"]).output)
    assert data["requires"] == [{"onnxruntime": "1.24", "purpose": "loading",
                                 "why": "ConvInteger with int8 weights"}]
    plain = json.loads(CliRunner().invoke(
        cli, ["info", str(models.classifier()), "--format", "json"]).output)
    assert plain["requires"] == []
