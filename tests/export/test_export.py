"""Export: parity on every zoo architecture, metadata into the runtime, atomic writes, errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edge_infer.export.errors import ParityError, SourceError
from edge_infer.export.exporter import ExportConfig, export
from edge_infer.runtime import Model, ModelMetadata
from edge_infer.runtime.cli import cli
from edge_infer.runtime.modelfile import read_model_info

from .conftest import ZOO


@pytest.mark.parametrize("arch", sorted(ZOO))
def test_parity_for_every_architecture(arch, trained_runs, tmp_path):
    out = tmp_path / f"{arch}.onnx"
    result = export(ExportConfig(trained_runs[arch], out=out))
    assert result.parity.passed and result.parity.max_abs_diff <= 1e-4
    if result.parity.top1_agreement is not None:
        assert result.parity.top1_agreement == 1.0
    info = read_model_info(out)
    assert info.opsets == {"ai.onnx": 17}
    assert info.inputs[0].shape[0] == "batch"
    # The runtime reads back exactly the contract the run folder recorded.
    recorded = json.loads((trained_runs[arch] / "model.json").read_text())
    model = Model(out)
    expected = ModelMetadata.from_props(recorded["metadata"])
    assert (model.metadata.task, model.metadata.labels, model.metadata.preprocess,
            model.metadata.output) == (expected.task, expected.labels, expected.preprocess,
                                       expected.output)
    assert model.signature.output_names[0] == recorded["output"]["name"]
    meta = model.metadata.raw
    assert json.loads(meta["edge_infer.parity"])["passed"] is True
    assert len(meta["edge_infer.weights_sha256"]) == 64
    assert json.loads(meta["edge_infer.source"])["tf2onnx"]
    # Names are the Keras model's: every kernel under its variable path, no TensorFlow scope.
    import keras
    import onnx

    keras_model = keras.models.load_model(trained_runs[arch] / "model.keras")
    graph = onnx.load(str(out)).graph
    kernels = {v.path for v in keras_model.weights if v.path.endswith("kernel")}
    assert kernels and kernels <= {i.name for i in graph.initializer}
    layers = {layer.name for layer in keras_model.layers}
    names = [n.name for n in graph.node] + [o for n in graph.node for o in n.output]
    assert not [n for n in names if n.endswith(":0") or "ReadVariableOp" in n
                or ("/" in n and n.split("/")[0] not in layers)]
    if arch == "lstm":  # the zoo's text LSTM masks its padding (Embedding mask_zero=True)
        assert "LSTM" in info.op_counts() and "Loop" not in info.op_counts()
        lstm = next(n for n in graph.node if n.op_type == "LSTM")
        assert len(lstm.input) > 4 and lstm.input[4]  # sequence lengths: padding skipped
        # Keras' negative-index wrapping in front of the embedding lookup is gone: the
        # lookup reads the tokens as moved to the front of each row (export/masking.py).
        writes = {o: n.op_type for n in graph.node for o in n.output}
        lookup = next(n for n in graph.node if n.op_type == "Gather")
        assert writes[lookup.input[1]] == "GatherElements"
        assert not {"Less", "Where", "Not"} & set(info.op_counts())
    if arch == "gru":  # two stacked Keras 3 GRUs: fused operators, not tf2onnx's loops
        assert info.op_counts().get("GRU") == 2 and "Loop" not in info.op_counts()
        grus = [layer.name for layer in keras_model.layers if type(layer).__name__ == "GRU"]
        assert [n.name for n in graph.node if n.op_type == "GRU"] == [f"{g}/GRU" for g in grus]
    if arch == "conv_autoencoder":  # each UpSampling2D is one Resize, not eight moves
        assert info.op_counts().get("Resize") == 2 and "Tile" not in info.op_counts()
    if arch in ("lstm", "gru"):  # Keras' zero initial state is the operator's default
        assert not {"Shape", "Expand"} & set(info.op_counts()), info.op_counts()
    if arch in ("cnn", "cifar_cnn"):
        # The Keras Flatten is one constant-shape Reshape, and layout changes are Transposes.
        assert not {"Shape", "Concat"} & set(info.op_counts())
        assert info.op_counts()["Reshape"] == 1


def test_runtime_metadata_round_trip(trained_runs, tmp_path):
    import onnx

    out = tmp_path / "cnn.onnx"
    export(ExportConfig(trained_runs["cnn"], out=out))
    recorded = json.loads((trained_runs["cnn"] / "model.json").read_text())["metadata"]
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    for key, value in recorded.items():
        assert props[key] == value


def test_exported_image_model_labels_a_png(trained_runs, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    out = tmp_path / "cnn.onnx"
    export(ExportConfig(trained_runs["cnn"], out=out))
    with np.load(trained_runs["cnn"] / "samples.npz") as data:
        x = data["x"][0]
    Image.fromarray((x[..., 0] * 255).round().astype(np.uint8)).save(tmp_path / "digit.png")
    result = CliRunner().invoke(cli, ["run", str(out), str(tmp_path / "digit.png"), "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["predictions"][0][0]["label"] in [str(i) for i in range(10)]
    # The PNG path gives the same scores as the preprocessed sample (8-bit rounding aside).
    direct = Model(out).run(x[np.newaxis])["probabilities"]
    np.testing.assert_allclose(doc["outputs"]["probabilities"], direct, atol=1e-2)


def test_exported_text_model_labels_a_raw_string(trained_runs, tmp_path):
    out = tmp_path / "lstm.onnx"
    export(ExportConfig(trained_runs["lstm"], out=out))
    result = CliRunner().invoke(cli, ["run", str(out), "win free cash now", "-f", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["predictions"][0][0]["label"] in ("ham", "spam")


def test_exported_generator_writes_pngs(trained_runs, tmp_path):
    pytest.importorskip("PIL")
    out = tmp_path / "gan.onnx"
    export(ExportConfig(trained_runs["gan"], out=out))
    result = CliRunner().invoke(cli, ["run", str(out), "random:4", "--image-dir",
                                      str(tmp_path / "samples")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "samples").glob("*.png"))) == 4


def test_failed_parity_writes_nothing(trained_runs, tmp_path):
    out = tmp_path / "strict.onnx"
    with pytest.raises(ParityError, match="nothing was written"):
        export(ExportConfig(trained_runs["cnn"], out=out, tolerance=1e-12))
    assert list(tmp_path.iterdir()) == []


def test_bad_sources(trained_runs, tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        export(ExportConfig(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="has no model.keras"):
        export(ExportConfig(tmp_path / "empty"))
    (tmp_path / "model.pb").write_text("x")
    with pytest.raises(SourceError, match="is not a .keras file"):
        export(ExportConfig(tmp_path / "model.pb"))
    (tmp_path / "broken.h5").write_text("not HDF5")
    with pytest.raises(SourceError, match="is not a loadable Keras model"):
        export(ExportConfig(tmp_path / "broken.h5"))
    (tmp_path / "broken.keras").write_text("not a zip")
    with pytest.raises(SourceError, match="is not a loadable Keras model"):
        export(ExportConfig(tmp_path / "broken.keras"))


def test_a_bare_keras_file_exports_without_a_run_folder(trained_runs, tmp_path):
    keras_file = tmp_path / "alone.keras"
    shutil.copy(trained_runs["mlp"] / "model.keras", keras_file)
    result = export(ExportConfig(keras_file))
    assert result.path == tmp_path / "alone.onnx" and result.parity.passed


def test_a_bare_keras_file_with_int32_token_ids_exports_on_random_ids(tmp_path):
    """No samples: parity runs on random inputs, which must be the input's own integer type
    (they were int64, which onnxruntime refused for an int32 input)."""
    import keras

    ids = keras.Input((6,), dtype="int32", name="ids")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 4)(ids))
    keras.Model(ids, keras.layers.Dense(2)(pooled)).save(tmp_path / "ids.keras")
    result = export(ExportConfig(tmp_path / "ids.keras"))
    assert result.parity.passed
    assert Model(result.path).signature.inputs[0].dtype == np.int32


CUSTOM = """
import keras


class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class Net(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.scale = Scale(0.5)
        self.out = keras.layers.Dense(3, activation="softmax")

    def call(self, x):
        return self.out(self.scale(self.hidden(x)))
"""


def test_custom_layers_and_subclassed_models_export_with_their_code(tmp_path):
    """A .keras file stores custom classes by name: without their code Keras cannot load it,
    and the message says to pass --import; with it, a custom layer and a subclassed model
    (traced through a functional model on the shape it was built with) export with parity."""
    import keras

    from edge_infer.export.custom_code import custom_objects

    code = tmp_path / "my_layers.py"
    code.write_text(CUSTOM)
    classes = custom_objects([str(code)])
    assert set(classes) == {"Scale", "Net"}  # keras, imported there, is not among them
    x = keras.Input((5,), name="x")
    keras.Model(x, keras.layers.Dense(2)(classes["Scale"](3.0)(x))).save(tmp_path / "layer.keras")
    net = classes["Net"]()
    net(np.zeros((1, 5), np.float32))
    net.save(tmp_path / "net.keras")
    with pytest.raises(SourceError, match="with --import"):
        export(ExportConfig(tmp_path / "layer.keras"))
    for name, model in (("layer", None), ("net", net)):
        result = export(ExportConfig(tmp_path / f"{name}.keras", imports=(str(code),)))
        assert result.parity.passed
        if model is not None:
            rows = np.random.default_rng(0).random((4, 5), dtype=np.float32)
            np.testing.assert_allclose(Model(result.path).run(rows)[
                Model(result.path).signature.output_names[0]], np.asarray(model(rows)),
                atol=1e-5)


def test_code_that_cannot_be_imported_is_named(tmp_path):
    from edge_infer.export.custom_code import custom_objects

    broken = tmp_path / "broken.py"
    broken.write_text("x = 1 / 0\n")
    with pytest.raises(SourceError, match=r"--import .*broken.py failed: ZeroDivisionError"):
        custom_objects([str(broken)])
    with pytest.raises(SourceError, match="no such file"):
        custom_objects([str(tmp_path / "missing.py")])
    with pytest.raises(SourceError, match="importable module"):
        custom_objects(["edge_infer_no_such_module"])
    (tmp_path / "any.keras").write_bytes(b"not read: the import fails first")
    ran = CliRunner().invoke(cli, ["export", str(tmp_path / "any.keras"), "--import",
                                   str(broken)])
    assert ran.exit_code == 2 and "ZeroDivisionError" in ran.output, ran.output
    assert "Traceback" not in ran.output


def test_a_model_in_memory_exports_with_its_samples_and_labels(tmp_path):
    """export_keras: the model object, real samples to prove parity on, class names for the
    runtime; the same refusals as the file export."""
    import keras

    from edge_infer.export import export_keras

    keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="features")
    model = keras.Model(x, keras.layers.Dense(3, activation="softmax", name="label")(
        keras.layers.Dense(8, activation="relu")(x)))
    rows = np.random.default_rng(0).random((50, 4), dtype=np.float32)
    result = export_keras(model, tmp_path / "m.onnx", samples=rows,
                          labels=["cat", "dog", "bird"])
    assert result.parity.passed and result.parity.samples == 50
    loaded = Model(result.path)
    assert loaded.metadata.labels == ("cat", "dog", "bird") and loaded.metadata.is_classifier
    best = loaded.classify(rows[:1], k=1)[0][0]
    assert best.label == ["cat", "dog", "bird"][int(np.argmax(model(rows[:1])))]
    same = export_keras(model, tmp_path / "d.onnx", samples={"features": rows})
    assert same.parity.max_abs_diff == result.parity.max_abs_diff
    assert same.parity.top1_agreement == 1.0  # no labels: a softmax still reads as classes
    with pytest.raises(SourceError, match="no array for input features"):
        export_keras(model, tmp_path / "e.onnx", samples={"x": rows})
    unnamed = keras.Input((4,))  # its tensor is keras_tensor_N, N counting every tensor made
    plain = export_keras(keras.Model(unnamed, keras.layers.Dense(2)(unnamed)),
                         tmp_path / "plain.onnx", samples=rows)
    assert Model(plain.path).signature.input_names[0].startswith("input_layer")
    with pytest.raises(SourceError, match="must end in .onnx"):
        export_keras(model, tmp_path / "m.keras", samples=rows)
    # Rounding differences of about 6e-8 (not rows * 1e6: a saturated softmax gives exactly 0
    # and 1 on both sides on some CPUs, an AVX-512 Xeon's among them).
    with pytest.raises(ParityError):
        export_keras(model, tmp_path / "f.onnx", samples=rows, tolerance=1e-12)
    assert not (tmp_path / "f.onnx").exists() and not (tmp_path / "e.onnx").exists()


def test_a_bare_keras_file_proves_parity_on_a_named_dataset_and_takes_labels(tmp_path):
    """--dataset: real samples for a .keras without a run folder (read as the model's input
    says: [N, 12, 16] floats are a sequence); --labels: class names for the runtime. A wrong
    count of labels or a dataset of the wrong shape is refused with both figures."""
    import keras

    keras.utils.set_random_seed(0)
    steps = keras.Input((12, 16), name="steps")
    model = keras.Model(steps, keras.layers.Dense(3, activation="softmax")(
        keras.layers.LSTM(4)(steps)))
    model.save(tmp_path / "seq.keras")
    x = np.random.default_rng(0).random((40, 12, 16), dtype=np.float32)
    np.savez(tmp_path / "seq.npz", x_train=x[:30], y_train=np.arange(30) % 3, x_test=x[30:],
             y_test=np.arange(10) % 3)
    ran = CliRunner().invoke(cli, ["export", str(tmp_path / "seq.keras"), "--dataset",
                                   str(tmp_path / "seq.npz"), "--labels", "up, down,flat"])
    assert ran.exit_code == 0, ran.output
    assert "random inputs" not in ran.output and "on 10 samples" in ran.output
    loaded = Model(tmp_path / "seq.onnx")
    assert loaded.metadata.labels == ("up", "down", "flat") and loaded.metadata.is_classifier
    wrong = CliRunner().invoke(cli, ["export", str(tmp_path / "seq.keras"), "--labels", "a,b"])
    assert wrong.exit_code == 2 and "2 labels (a, b)" in wrong.output and "3 classes" in \
        wrong.output, wrong.output
    np.savez(tmp_path / "flat.npz", x_train=x[:, 0], y_train=np.arange(40) % 3)
    shaped = CliRunner().invoke(cli, ["export", str(tmp_path / "seq.keras"), "--dataset",
                                      str(tmp_path / "flat.npz")])
    assert shaped.exit_code == 2 and "shape [16]" in shaped.output, shaped.output


def test_normalization_layers_keep_their_statistics_as_constants(tmp_path):
    """Keras' Normalization holds its mean and variance as tensors, not variables, adapted or
    given: tf2onnx left each as a graph input to be fed, and the export failed."""
    import keras

    layers = keras.layers
    rows = np.random.default_rng(0).normal(3, 2, (64, 5)).astype(np.float32)
    adapted = layers.Normalization()
    adapted.adapt(rows)
    x = keras.Input((5,), name="x")
    y = layers.Normalization(mean=1.0, variance=9.0)(layers.Dense(4)(adapted(x)))
    keras.Model(x, layers.Dense(2)(y)).save(tmp_path / "norm.keras")
    result = export(ExportConfig(tmp_path / "norm.keras"))
    assert result.parity.passed
    assert Model(result.path).signature.input_names == ("x",)


def test_a_legacy_h5_file_exports(trained_runs, tmp_path):
    """Keras 2's HDF5 format, which Keras 3 still loads: the models of older tutorials."""
    import keras

    legacy = tmp_path / "legacy.h5"
    keras.models.load_model(trained_runs["cnn"] / "model.keras").save(legacy)
    result = export(ExportConfig(legacy))
    assert result.path == tmp_path / "legacy.onnx" and result.parity.passed
    assert result.parity.max_abs_diff <= 1e-4


def test_cli_export_and_errors(trained_runs, tmp_path):
    runner = CliRunner()
    out = tmp_path / "m.onnx"
    result = runner.invoke(cli, ["export", str(trained_runs["mlp"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "parity max |diff|" in result.stdout and f"edge-infer run {out}" in result.stdout
    assert "operators from tf2onnx" in result.stderr  # what optimisation and simplification did
    bad = runner.invoke(cli, ["export", str(trained_runs["mlp"]), "--opset", "9"])
    assert bad.exit_code == 2 and "--opset must be between 13" in bad.output
    strict = runner.invoke(cli, ["export", str(trained_runs["mlp"]), "--out",
                                 str(tmp_path / "s.onnx"), "--tolerance", "1e-15"])
    assert strict.exit_code == 1 and "nothing was written" in strict.output
    assert not (tmp_path / "s.onnx").exists()


@pytest.mark.parametrize("masked", [False, True])
def test_keras3_gru_is_the_fused_operator_unless_masked(masked):
    """edge-infer's rewriter (export/gru.py) turns Keras 3 GRUs into ONNX ``GRU``; a masked one
    stays tf2onnx's ``Loop``. Both match Keras."""
    import keras
    import onnxruntime as ort

    from edge_infer.export.convert import keras_to_onnx

    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,), dtype="int64", name="tokens")
    x = keras.layers.Embedding(30, 8, mask_zero=masked)(inputs)
    x = keras.layers.GRU(16, return_sequences=True)(x)
    x = keras.layers.GRU(8)(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    proto = keras_to_onnx(model)
    ops = [n.op_type for n in proto.graph.node]
    assert (ops.count("GRU"), "Loop" in ops) == ((0, True) if masked else (2, False)), ops
    tokens = np.random.default_rng(0).integers(1, 30, (16, 12))
    tokens[:8, -4:] = 0  # padding, which the mask skips
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: tokens})[0]
    np.testing.assert_allclose(got, model.predict(tokens, verbose=0), atol=1e-5)


def test_gru_variants_fuse_where_onnx_can_express_them():
    """Bidirectional, backwards and relu GRUs become ``GRU``; ``reset_after=False``, a cell
    graph the rewriter does not match, stays a ``Loop``. All of them match Keras."""
    import keras
    import onnxruntime as ort

    from edge_infer.export.convert import keras_to_onnx

    layers = keras.layers
    variants = {"bidirectional": (layers.Bidirectional(layers.GRU(8)), True),
                "backwards": (layers.GRU(8, go_backwards=True), True),
                "relu": (layers.GRU(8, activation="relu"), True),
                "reset_before": (layers.GRU(8, reset_after=False), False)}
    x = np.random.default_rng(0).standard_normal((5, 20, 3)).astype(np.float32)
    for name, (layer, fused) in variants.items():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((20, 3), name="sequence")
        model = keras.Model(inputs, layers.Dense(2)(layer(inputs)))
        proto = keras_to_onnx(model)
        ops = {n.op_type for n in proto.graph.node}
        assert ("GRU" in ops, "Loop" in ops) == (fused, not fused), (name, ops)
        session = ort.InferenceSession(proto.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5, err_msg=name)


def test_simple_rnn_variants_fuse_where_onnx_can_express_them():
    """Keras 3 SimpleRNNs become ONNX ``RNN`` (export/simple_rnn.py): tanh, relu, no bias,
    bidirectional, backwards, stacked and per-step outputs; a linear one (ONNX's ``Affine``,
    which not every execution provider has) stays a ``Loop``. All of them match Keras."""
    import keras
    import onnxruntime as ort

    from edge_infer.export.convert import keras_to_onnx

    layers = keras.layers
    variants = {"tanh": (lambda: layers.SimpleRNN(8), 1),
                "relu": (lambda: layers.SimpleRNN(8, activation="relu"), 1),
                "no_bias": (lambda: layers.SimpleRNN(8, use_bias=False), 1),
                "bidirectional": (lambda: layers.Bidirectional(layers.SimpleRNN(8)), 2),
                "backwards": (lambda: layers.SimpleRNN(8, go_backwards=True), 1),
                "stacked": (lambda: keras.Sequential([layers.SimpleRNN(8, return_sequences=True),
                                                      layers.SimpleRNN(4)]), 2),
                "per_step": (lambda: layers.SimpleRNN(8, return_sequences=True), 1),
                "linear": (lambda: layers.SimpleRNN(8, activation=None), 0)}
    x = np.random.default_rng(0).standard_normal((5, 20, 3)).astype(np.float32)
    for name, (layer, fused) in variants.items():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((20, 3), name="sequence")
        model = keras.Model(inputs, layers.Dense(2)(layer()(inputs)))
        proto = keras_to_onnx(model)
        ops = [n.op_type for n in proto.graph.node]
        assert (ops.count("RNN"), "Loop" in ops) == (fused, not fused), (name, ops)
        session = ort.InferenceSession(proto.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5, err_msg=name)


def test_a_model_with_two_inputs_and_two_outputs_exports_with_their_names(tmp_path):
    """Inputs in model.inputs order under their Keras names, outputs named after the Keras
    output layers, parity checked on every output."""
    import keras

    keras.utils.set_random_seed(0)
    image, extra = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    x = keras.layers.Concatenate()([keras.layers.Dense(8)(image), keras.layers.Dense(8)(extra)])
    model = keras.Model([image, extra], [keras.layers.Dense(2, activation="softmax",
                                                           name="label")(x),
                                         keras.layers.Dense(1, name="score")(x)])
    model.save(tmp_path / "two.keras")
    result = export(ExportConfig(tmp_path / "two.keras"))
    assert result.parity.passed and result.parity.top1_agreement == 1.0
    loaded = Model(result.path)
    assert loaded.signature.input_names == ("a", "b")
    assert loaded.signature.output_names == ("label", "score")
    rng = np.random.default_rng(1)
    a, b = rng.random((5, 4), dtype=np.float32), rng.random((5, 3), dtype=np.float32)
    got = loaded.run({"a": a, "b": b})
    want = model([a, b])
    np.testing.assert_allclose(got["label"], np.asarray(want[0]), atol=1e-5)
    np.testing.assert_allclose(got["score"], np.asarray(want[1]), atol=1e-5)


def test_conversion_in_a_process_holding_a_lookup_table_logs_no_serialising_warning(
        capfd, caplog):
    """After training on text (an adapted TextVectorization holds a lookup table), TensorFlow
    warned in three lines ending "'NoneType' object has no attribute 'name'" while tf2onnx
    converted; the pipeline's output showed it as if the export had failed."""
    import keras

    from edge_infer.export.convert import keras_to_onnx

    vectorizer = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=5)
    vectorizer.adapt(["a b c", "b c d"])
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    proto = keras_to_onnx(model)
    assert [n.op_type for n in proto.graph.node]
    logged = capfd.readouterr().err + caplog.text
    assert "Issue encountered when serializing" not in logged
    assert "NoneType" not in logged


def test_gelu_and_celu_export_with_parity(tmp_path):
    """Keras' exact gelu (erfc) and celu (expm1) use TensorFlow operators tf2onnx leaves
    unconverted; export/tf_ops.py writes them as Erf and Exp, and parity holds."""
    import keras
    import onnx

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="x")
    x = keras.layers.Dense(16, activation="gelu")(inputs)
    x = keras.layers.Dense(8, activation="celu")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="label")(x))
    model.save(tmp_path / "acts.keras")
    result = export(ExportConfig(tmp_path / "acts.keras"))
    assert result.parity.passed and result.parity.max_abs_diff < 1e-5
    ops = {n.op_type for n in onnx.load(str(result.path)).graph.node}
    assert {"Erf", "Exp"} <= ops and not {"Erfc", "Expm1"} & ops
    x = np.linspace(-12, 12, 64, dtype=np.float32).reshape(8, 8)  # erfc's tiny tail too
    got = Model(result.path).run(x)["label"]
    np.testing.assert_allclose(got, np.asarray(model(x)), atol=1e-5)


def test_an_operator_tf2onnx_cannot_convert_is_named():
    """tf2onnx passes an operator it has no handler for through, and onnxruntime then refused
    the graph with INVALID_GRAPH; the export names the operator instead."""
    import keras

    from edge_infer.export.convert import keras_to_onnx
    from edge_infer.export.errors import ConversionError

    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Lambda(keras.ops.erfinv)(inputs))
    with pytest.raises(ConversionError, match=r"operators Erfinv \(1 node\)"):
        keras_to_onnx(model)


def test_parity_counts_nan_on_both_sides_as_agreement_and_on_one_side_as_failure():
    """A masked average over an all-padding row is NaN in Keras and in the exported model:
    the same result. NaN on one side only is a disagreement."""
    from edge_infer.export.parity import check

    keras_out = np.array([[0.2, 0.8], [np.nan, np.nan]])
    same = check(keras_out, keras_out.copy(), tolerance=1e-4, classifier=True)
    assert same.passed and same.max_abs_diff == 0.0
    one_side = check(keras_out, np.array([[0.2, 0.8], [0.5, 0.5]]), tolerance=1e-4,
                     classifier=False)
    assert not one_side.passed


def test_a_tensor_computed_outside_the_layers_is_a_constant_as_in_keras():
    """A layer applied to a constant while the model is built leaves a computed tensor that the
    model captures: Keras reuses it as it is, and tf2onnx turned it into a graph input no
    caller could feed (onnxruntime then failed with 'Required inputs are missing'). It is an
    initializer now, and the graph matches Keras."""
    import keras
    import onnxruntime as ort

    from edge_infer.export.convert import keras_to_onnx

    tokens = keras.Input((8,), dtype="int64", name="tokens")
    positions = keras.layers.Embedding(8, 4)(keras.ops.arange(8)[None, :])
    x = keras.layers.Embedding(50, 4)(tokens) + positions
    model = keras.Model(tokens, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    proto = keras_to_onnx(model)
    assert [i.name for i in proto.graph.input] == ["tokens"]
    ids = np.random.default_rng(0).integers(0, 50, (3, 8))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"tokens": ids})[0], np.asarray(model(ids)),
                               atol=1e-5)


def test_a_lookup_table_in_the_model_is_refused_with_the_reason():
    """A lookup table is TensorFlow state, not a tensor: tf2onnx leaves its handle as a graph
    input, and there is no constant to put there."""
    import keras

    from edge_infer.export.convert import keras_to_onnx
    from edge_infer.export.errors import ConversionError

    ids = keras.Input((4,), dtype="int64", name="ids")
    looked_up = keras.layers.IntegerLookup(vocabulary=[3, 7, 11, 42])(ids)
    model = keras.Model(ids, keras.layers.Dense(2)(keras.layers.Flatten()(
        keras.layers.Embedding(6, 3)(looked_up))))
    with pytest.raises(ConversionError, match="lookup table"):
        keras_to_onnx(model)


def test_grouped_convolutions_export_as_onnx_conv_groups(tmp_path):
    """Keras runs a grouped convolution inside an XLA function, which tf2onnx cannot convert
    (ConvNeXt's depthwise layers failed the export); traced as TensorFlow's Conv2D it becomes
    ONNX Conv with `group`. The backend is as it was afterwards."""
    import keras
    import onnx
    from keras.src.backend.tensorflow import nn as backend_nn

    layers = keras.layers
    before = backend_nn.conv
    keras.utils.set_random_seed(0)
    image, steps = keras.Input((10, 10, 8), name="image"), keras.Input((12, 6), name="steps")
    x = layers.Conv2D(16, 3, groups=4, padding="same", activation="relu")(
        layers.Conv2D(8, 3, groups=8)(image))
    y = layers.Conv1D(6, 3, groups=3, padding="causal")(steps)
    model = keras.Model([image, steps], layers.Dense(3, activation="softmax")(layers.Concatenate()(
        [layers.GlobalAveragePooling2D()(x), layers.GlobalAveragePooling1D()(y)])))
    rng = np.random.default_rng(0)
    from edge_infer.export import export_keras

    result = export_keras(model, tmp_path / "grouped.onnx",
                          samples=[rng.random((8, 10, 10, 8), dtype=np.float32),
                                   rng.random((8, 12, 6), dtype=np.float32)])
    assert result.parity.passed
    groups = sorted(a.i for n in onnx.load(str(result.path)).graph.node if n.op_type == "Conv"
                    for a in n.attribute if a.name == "group")
    assert groups == [3, 4, 8]
    assert backend_nn.conv is before


def test_lambda_layers_load_only_when_trusted(tmp_path):
    """Keras refuses to run the Python a Lambda layer holds unless told the file is trusted;
    the refusal names --unsafe, which loads it."""
    import keras

    x = keras.Input((6,), name="x")
    scaled = keras.layers.Lambda(lambda v: v * 2.0 - 1.0)(x)
    keras.Model(x, keras.layers.Dense(3)(scaled)).save(tmp_path / "lambda.keras")
    with pytest.raises(SourceError, match="--unsafe"):
        export(ExportConfig(tmp_path / "lambda.keras"))
    assert export(ExportConfig(tmp_path / "lambda.keras", safe_mode=False)).parity.passed
