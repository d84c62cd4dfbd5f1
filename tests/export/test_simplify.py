"""Graph simplifications: static flatten shapes, one-channel reshapes back to transposes,
zero initial states of recurrent layers left out, last steps read from the final state."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge_infer.export.simplify import simplify  # noqa: E402


def _int64(name: str, *values: int):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _flatten_dense():
    """x[N,2,3,4] -> Reshape to [N, 24] through a Shape subgraph (what tf2onnx writes for a
    Keras Flatten) -> Gemm with constant weights."""
    w = np.random.default_rng(0).normal(size=(24, 5)).astype(np.float32)
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "zero", "one"], ["n"]),
             helper.make_node("Concat", ["n", "k"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w"], ["y"])]
    inits = [_int64("zero", 0), _int64("one", 1), _int64("k", 24),
             numpy_helper.from_array(w, "w")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def test_flatten_shape_subgraph_folds_to_a_constant():
    model = _flatten_dense()
    x = np.random.default_rng(1).normal(size=(7, 2, 3, 4)).astype(np.float32)
    before = _run(model, x)[0]
    changed = simplify(model)
    onnx.checker.check_model(model)
    assert changed["fold_reshapes"] == 1
    assert [n.op_type for n in model.graph.node] == ["Reshape", "Gemm"]
    assert not {"zero", "one", "k"} & {i.name for i in model.graph.initializer}
    np.testing.assert_array_equal(_run(model, x)[0], before)
    # Still batch-dynamic: another batch size gives the same rows.
    np.testing.assert_array_equal(_run(model, x[:1])[0], before[:1])


def test_a_reshape_that_changes_the_batch_folds_to_the_same_result():
    """[N, 2, 3, 4] -> [6N, 4]: the output is static after its first dimension, so [-1, 4]
    gives the same; no shape computation is left."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "zero", "one"], ["n"]),
             helper.make_node("Mul", ["n", "six"], ["n6"]),
             helper.make_node("Concat", ["n6", "four"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = [_int64("zero", 0), _int64("one", 1), _int64("six", 6), _int64("four", 4)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.arange(2 * 24, dtype=np.float32).reshape(2, 2, 3, 4)
    before = _run(model, x)[0]
    assert simplify(model)["fold_reshapes"] == 1
    assert [n.op_type for n in model.graph.node] == ["Reshape"]
    after = _run(model, x)[0]
    assert after.shape == (12, 4)
    np.testing.assert_array_equal(after, before)


def test_the_reshape_back_after_a_dense_on_steps_folds():
    """Keras' Dense on [N, 5, 3] (tf2onnx's Tensordot): rows to [5N, 3], MatMul, then back to
    [N, 5, 4] through a shape computed from the input's; the last reshape gets [-1, 5, 4]."""
    w = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    nodes = [helper.make_node("Reshape", ["x", "rows"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["projected"]),
             helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "zero", "two"], ["lead"]),
             helper.make_node("Concat", ["lead", "units"], ["shape"], axis=0),
             helper.make_node("Reshape", ["projected", "shape"], ["y"])]
    inits = [_int64("rows", -1, 3), _int64("zero", 0), _int64("two", 2), _int64("units", 4),
             numpy_helper.from_array(w, "w")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(1).normal(size=(2, 5, 3)).astype(np.float32)
    before = _run(model, x)[0]
    simplify(model)
    assert [n.op_type for n in model.graph.node] == ["Reshape", "MatMul", "Reshape"]
    np.testing.assert_allclose(_run(model, x)[0], before, rtol=1e-6)


@pytest.mark.parametrize("src,dst,perm", [((5, 6, 1), (1, 5, 6), [0, 3, 1, 2]),
                                          ((1, 5, 6), (5, 6, 1), [0, 2, 3, 1])])
def test_one_channel_reshape_becomes_the_transpose_it_is(src, dst, perm):
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["t"]),
             helper.make_node("Relu", ["t"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *src])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *dst])],
        [_int64("shape", -1, *dst)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(3).normal(size=(3, *src)).astype(np.float32)
    before = _run(model, x)[0]
    assert simplify(model)["restore_layout_transposes"] == 1
    onnx.checker.check_model(model)
    node = model.graph.node[0]
    assert node.op_type == "Transpose" and list(node.attribute[0].ints) == perm
    assert "shape" not in {i.name for i in model.graph.initializer}
    np.testing.assert_array_equal(_run(model, x)[0], before)


def test_a_reshape_that_reorders_elements_stays():
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 3, 2])],
        [_int64("shape", -1, 1, 3, 2)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert simplify(model)["restore_layout_transposes"] == 0
    assert model.graph.node[0].op_type == "Reshape"


def _gru(initial: float, backward: float | None = None):
    """x[T,N,2] -> GRU(3) whose initial state is ``initial`` expanded to [1, N, 3] from the
    input's batch size (what tf2onnx writes for Keras' zero state). With ``backward``, a
    bidirectional GRU whose state is the Concat of both directions' (``backward`` the
    second's)."""
    rng = np.random.default_rng(0)
    directions = 1 if backward is None else 2
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "one", "two"], ["n"]),
             helper.make_node("Concat", ["n", "three"], ["shape"], axis=0),
             helper.make_node("Expand", ["value", "shape"], ["zeros"])]
    values = [numpy_helper.from_array(np.array(initial, np.float32), "value")]
    if backward is None:
        nodes.append(helper.make_node("Unsqueeze", ["zeros", "zero"], ["h0"]))
    else:
        values.append(numpy_helper.from_array(np.array(backward, np.float32), "second"))
        nodes += [helper.make_node("Expand", ["second", "shape"], ["seconds"]),
                  helper.make_node("Unsqueeze", ["zeros", "zero"], ["forward"]),
                  helper.make_node("Unsqueeze", ["seconds", "zero"], ["backward"]),
                  helper.make_node("Concat", ["forward", "backward"], ["h0"], axis=0)]
    nodes.append(helper.make_node("GRU", ["x", "w", "r", "b", "", "h0"], ["y", "h"],
                                  hidden_size=3, linear_before_reset=1,
                                  direction="forward" if backward is None else "bidirectional"))
    inits = [_int64("zero", 0), _int64("one", 1), _int64("two", 2), _int64("three", 3), *values,
             *(numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
               for name, shape in (("w", (directions, 9, 2)), ("r", (directions, 9, 3)),
                                   ("b", (directions, 18))))]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, "N", 2])],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, [directions, "N", 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("initial,dropped", [(0.0, True), (0.5, False)])
def test_a_zero_initial_state_is_left_out(initial, dropped):
    model = _gru(initial)
    x = np.random.default_rng(1).normal(size=(5, 4, 2)).astype(np.float32)
    before = _run(model, x)[0]
    assert simplify(model)["drop_zero_initial_states"] == int(dropped)
    ops = [n.op_type for n in model.graph.node]
    assert ops == (["GRU"] if dropped else ["Shape", "Slice", "Concat", "Expand", "Unsqueeze",
                                            "GRU"])
    np.testing.assert_allclose(_run(model, x)[0], before, atol=1e-6)


@pytest.mark.parametrize("second,dropped", [(0.0, True), (0.5, False)])
def test_a_bidirectional_zero_state_built_by_concat_is_left_out(second, dropped):
    """tf2onnx builds a bidirectional layer's state as a Concat of both directions' zeros;
    it is dropped only when every part is zero."""
    model = _gru(0.0, backward=second)
    x = np.random.default_rng(0).normal(size=(5, 4, 2)).astype(np.float32)
    before = _run(model, x)[0]
    assert simplify(model)["drop_zero_initial_states"] == int(dropped)
    assert ([n.op_type for n in model.graph.node] == ["GRU"]) == dropped
    np.testing.assert_allclose(_run(model, x)[0], before, atol=1e-6)


def _last_steps(steps: int | str, starts: tuple[int, int]):
    """x[steps,N,2] -> bidirectional RNN(3) -> each direction's step ``starts[d]`` sliced out of
    ``Y`` (tf2onnx's spelling: Slice the direction, Squeeze, Slice the step, Squeeze) ->
    Concat. Starts -1 (forward) and 0 (reverse) are the last steps, which ``Y_h`` holds."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("RNN", ["x", "w", "r", "b"], ["y", ""], hidden_size=3,
                              direction="bidirectional")]
    for d in range(len(starts)):
        nodes += [helper.make_node("Slice", ["y", f"d{d}", f"d{d + 1}", "one"], [f"y{d}"]),
                  helper.make_node("Squeeze", [f"y{d}", "one"], [f"s{d}"]),
                  helper.make_node("Slice", [f"s{d}", f"start{d}", f"end{d}", "zero"],
                                   [f"t{d}"]),
                  helper.make_node("Squeeze", [f"t{d}", "zero"], [f"last{d}"])]
    nodes.append(helper.make_node("Concat", ["last0", "last1"], ["out"], axis=1))
    inits = [_int64("zero", 0), _int64("one", 1), _int64("d0", 0), _int64("d1", 1),
             _int64("d2", 2),
             *(_int64(f"start{d}", start) for d, start in enumerate(starts)),
             *(_int64(f"end{d}", start + 1 if start != -1 else 2**62)
               for d, start in enumerate(starts)),
             *(numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
               for name, shape in (("w", (2, 3, 2)), ("r", (2, 3, 3)), ("b", (2, 6))))]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, "N", 2])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 6])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("steps,starts,read", [(5, (-1, 0), 2), ("T", (-1, 0), 2),
                                               (5, (4, 0), 2), ("T", (4, 0), 1),
                                               (5, (-2, 1), 0)])
def test_last_step_reads_come_from_the_final_state(steps, starts, read):
    """Both directions' last steps read ``Y_h``; a step that is the last only at one length
    (4 of 5) is rewired only where the length is static; other steps stay slices of ``Y``."""
    model = _last_steps(steps, starts)
    lengths = [5] if steps == 5 else [5, 7]
    xs = [np.random.default_rng(n).normal(size=(n, 4, 2)).astype(np.float32) for n in lengths]
    before = [_run(model, x)[0] for x in xs]
    assert simplify(model)["read_final_states"] == read
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Slice") == 2 * (2 - read) and ops.count("Gather") == read, ops
    for x, want in zip(xs, before):
        np.testing.assert_array_equal(_run(model, x)[0], want)


def _embedding(index_nodes: list, vocab: int = 7):
    """tokens[N, 3] -> (index arithmetic) -> Gather rows of a [vocab, 2] table."""
    table = np.arange(vocab * 2, dtype=np.float32).reshape(vocab, 2)
    nodes = [*index_nodes, helper.make_node("Gather", ["table", "idx"], ["y"], axis=0)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 2])],
        [numpy_helper.from_array(table, "table"), _int64("zero", 0), _int64("n", vocab),
         _int64("one", 1)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_negative_index_wrapping_before_a_gather_is_dropped():
    """Keras' take() wraps i < 0 to i + n before the lookup; ONNX Gather already does."""
    from edge_infer.export.simplify import drop_index_wrapping

    wrap = [helper.make_node("Less", ["tokens", "zero"], ["neg"]),
            helper.make_node("Add", ["tokens", "n"], ["shifted"]),
            helper.make_node("Where", ["neg", "shifted", "tokens"], ["idx"])]
    model = _embedding(wrap)
    tokens = np.array([[0, 3, 6], [-1, -7, 2]], np.int64)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    before = session.run(None, {"tokens": tokens})[0]
    assert drop_index_wrapping(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Gather"]
    assert model.graph.node[0].input[1] == "tokens"
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"tokens": tokens})[0], before)


def test_index_arithmetic_that_changes_the_row_is_kept():
    from edge_infer.export.simplify import drop_index_wrapping

    shift = [helper.make_node("Add", ["tokens", "one"], ["idx"])]  # a real offset
    model = _embedding(shift)
    assert drop_index_wrapping(model) == 0
    assert [n.op_type for n in model.graph.node] == ["Add", "Gather"]


def _repeat_graph(tile_axis: int, transpose_first: bool = False):
    """x[N, 2, 3, 4] -> Unsqueeze at ``tile_axis`` -> Tile x2 there -> Reshape to
    [N, 2, 6, 4]. With the new axis after H (4) that is numpy.repeat along H, which is what
    tf2onnx writes for a Keras 3 UpSampling; before H (3) it is numpy.tile, which is not.
    With ``transpose_first`` x is [N, 3, 2, 4] and a Transpose leads in."""
    reps = [1, 1, 1, 1, 1]
    reps[tile_axis] = 2
    nodes = [helper.make_node("Unsqueeze", ["xt" if transpose_first else "x", "axis"], ["u"]),
             helper.make_node("Tile", ["u", "reps"], ["t"]),
             helper.make_node("Reshape", ["t", "shape"], ["r"]),
             helper.make_node("Relu", ["r"], ["y"])]
    if transpose_first:
        nodes.insert(0, helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1, 3]))
    shape = ["N", 3, 2, 4] if transpose_first else ["N", 2, 3, 4]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 6, 4])],
        [_int64("axis", tile_axis), _int64("reps", *reps), _int64("shape", -1, 2, 6, 4)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_repeating_run_of_moves_becomes_one_resize():
    from edge_infer.export.simplify import fold_upsampling

    model = _repeat_graph(tile_axis=3)
    x = np.random.default_rng(0).normal(size=(2, 2, 3, 4)).astype(np.float32)
    before = _run(model, x)[0]
    np.testing.assert_array_equal(before, np.maximum(np.repeat(x, 2, axis=2), 0))
    assert fold_upsampling(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Resize", "Relu"]
    np.testing.assert_array_equal(_run(model, x)[0], before)


def test_a_run_that_tiles_instead_of_repeating_is_kept():
    from edge_infer.export.simplify import fold_upsampling

    model = _repeat_graph(tile_axis=2)
    assert fold_upsampling(model) == 0
    assert [n.op_type for n in model.graph.node] == ["Unsqueeze", "Tile", "Reshape", "Relu"]


def test_a_repeat_after_a_layout_change_is_folded_too():
    """The run starts with a Transpose that is not part of the repeat: the repeat after it is
    still found (every sub-run is tried) and the Transpose stays."""
    from edge_infer.export.simplify import fold_upsampling

    model = _repeat_graph(tile_axis=3, transpose_first=True)
    x = np.random.default_rng(0).normal(size=(2, 3, 2, 4)).astype(np.float32)
    before = _run(model, x)[0]
    assert fold_upsampling(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Transpose", "Resize", "Relu"]
    np.testing.assert_array_equal(_run(model, x)[0], before)


def test_a_repeat_written_across_a_layout_change_becomes_resize_then_transpose():
    """An UpSampling1D after a Conv1D with a bias: tf2onnx repeats the steps of [N, C, W] on
    the way back to [N, 2W, C] (Unsqueeze, Tile, Transpose, Reshape). The run is a repeat then
    a transpose: it becomes Resize [1, 1, 2] then Transpose (0, 2, 1), same values."""
    from edge_infer.export.simplify import fold_upsampling

    nodes = [helper.make_node("Unsqueeze", ["x", "one"], ["u"]),
             helper.make_node("Tile", ["u", "reps"], ["t"]),
             helper.make_node("Transpose", ["t"], ["p"], perm=[0, 3, 1, 2]),
             helper.make_node("Reshape", ["p", "shape"], ["r"]),
             helper.make_node("Relu", ["r"], ["y"])]
    inits = [_int64("one", 1), _int64("reps", 1, 2, 1, 1), _int64("shape", -1, 12, 3)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 12, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(0).normal(size=(2, 3, 6)).astype(np.float32)
    before = _run(model, x)[0]
    assert fold_upsampling(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Resize", "Transpose", "Relu"]
    np.testing.assert_array_equal(_run(model, x)[0], before)


def test_a_computed_target_known_but_for_one_entry_folds():
    """Einsum-style: the target is [max(N, N), max(4, 4), 8] from the input's shape. ONNX's
    shape inference does not propagate values through Max; export/shape_values.py does, in
    terms of N (a name sympy would otherwise read as its N function), and the one entry that
    depends on it becomes -1."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "lead"], ["n"]),
             helper.make_node("Max", ["n", "n"], ["n_max"]),
             helper.make_node("Max", ["four", "four"], ["heads"]),
             helper.make_node("Concat", ["n_max", "heads", "eight"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = [_int64("lead", 0), _int64("four", 4), _int64("eight", 8)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.arange(3 * 32, dtype=np.float32).reshape(3, 32)
    before = _run(model, x)[0]
    assert simplify(model)["fold_reshapes"] == 1
    assert [n.op_type for n in model.graph.node] == ["Reshape"]
    shape = numpy_helper.to_array(
        next(i for i in model.graph.initializer if i.name == model.graph.node[0].input[1]))
    assert shape.tolist() == [-1, 4, 8]
    np.testing.assert_array_equal(_run(model, x)[0], before)


def test_a_computed_target_with_an_entry_nobody_knows_stays():
    from edge_infer.export.shape_values import reshape_target, shape_value
    from edge_infer.export.simplify import initializers, producers

    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "lead"], ["n"]),
             helper.make_node("Max", ["n", "n"], ["n_max"]),
             helper.make_node("Concat", ["n_max", "minus_one"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [_int64("lead", 0), _int64("minus_one", -1)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    shapes = {"x": [None, 32]}
    producer, inits = producers(model.graph), initializers(model.graph)
    assert shape_value("shape", producer, inits, shapes) == [None, -1]
    assert reshape_target(model.graph.node[-1], producer, inits, shapes) is None
