"""Every input is checked against the signature before a run, with errors that say what's wrong."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

from edge_infer.runtime import InputError, Model


@pytest.fixture
def clf(models):
    return Model(models.classifier())


def test_signature_is_read_once_with_symbolic_dims(models):
    model = Model(models.dynamic())
    (spec,) = model.signature.inputs
    assert spec.name == "x" and spec.type == "float32" and spec.shape == ("N", "T", "F")
    assert model.signature.outputs[0].shape == ("N", "F")
    assert model.signature.to_dict()["inputs"][0]["shape"] == ["N", "T", "F"]


def test_missing_input_names_the_input_and_what_was_given(models):
    model = Model(models.two_in_two_out())
    with pytest.raises(InputError, match=r"input 'b' is missing: the model needs a, b, got a"):
        model.run({"a": np.ones((1, 3), np.float32)})


def test_unknown_input_name_lists_the_real_ones(clf):
    with pytest.raises(InputError, match=r"no input 'images'; its inputs are x"):
        clf.run({"images": np.ones((1, 4), np.float32)})


def test_wrong_count_of_positional_inputs(models):
    model = Model(models.two_in_two_out())
    with pytest.raises(InputError, match="takes 2 inputs \\(a, b\\), got 3 arrays"):
        model.run([np.ones((1, 3))] * 3)


def test_one_array_for_a_multi_input_model(models):
    with pytest.raises(InputError, match="takes 2 inputs .* pass them by name"):
        Model(models.two_in_two_out()).run(np.ones((1, 3), np.float32))


def test_wrong_rank(clf):
    with pytest.raises(InputError, match=r"input 'x' expects rank 2 \[N, 4\], got an array of "
                                         r"shape \[1, 2, 4\] \(rank 3\)"):
        clf.run(np.ones((1, 2, 4), np.float32))


def test_wrong_static_dimension(clf):
    with pytest.raises(InputError, match=r"expects shape \[N, 4\], got \[2, 5\]: dimension 1 "
                                         r"must be 4, found 5"):
        clf.run(np.ones((2, 5), np.float32))


def test_wrong_dimension_of_one_sample_says_so(clf):
    with pytest.raises(InputError, match=r"got \[5\] \(one sample\)"):
        clf.run(np.ones(5, np.float32))


def test_lossless_casts_are_made(clf):
    ints = np.array([[1, 2, 3, 4]], np.int16)  # int16 fits float32 exactly
    exact64 = np.array([[0.5, 0.25, 1.0, 2.0]], np.float64)  # values exact in float32
    want = clf.run(np.array([[1, 2, 3, 4]], np.float32))["y"]
    np.testing.assert_array_equal(clf.run(ints)["y"], want)
    clf.run(exact64)


def test_lossy_cast_is_refused_with_the_fix(clf):
    x = np.array([[0.1, 0.2, 0.3, 0.4]], np.float64)
    with pytest.raises(InputError, match=r"input 'x' expects float32, got float64 values that "
                                         r"float32 cannot hold exactly.*astype\('float32'\)"):
        clf.run(x)
    clf.run(x, cast="force")  # the explicit opt-in works


def test_float_into_int_input_must_be_whole(models):
    model = Model(models.identity(TensorProto.INT64, ["N", 2]))
    np.testing.assert_array_equal(model.run(np.array([[1.0, 2.0]]))["y"], [[1, 2]])
    with pytest.raises(InputError, match="int64 cannot hold exactly"):
        model.run(np.array([[1.5, 2.0]]))


def test_out_of_range_ints_are_refused(models):
    model = Model(models.identity(TensorProto.INT8, ["N", 2]))
    with pytest.raises(InputError, match="int8"):
        model.run(np.array([[1, 300]], np.int64))
    np.testing.assert_array_equal(model.run(np.array([[1, -128]]))["y"], [[1, -128]])


def test_literal_numbers_may_narrow_to_the_models_float(clf):
    x = np.array([[0.1, 0.2, 0.3, 0.4]])
    y = clf.run(x, cast="literal")["y"]
    np.testing.assert_array_equal(y, clf.run(x.astype(np.float32))["y"])


def test_literal_overflow_is_refused(models):
    model = Model(models.identity(TensorProto.FLOAT16, ["N", 1]))
    with pytest.raises(InputError, match="float16"):
        model.run(np.array([[1e6]]), cast="literal")


def test_strings_into_a_number_input(clf):
    with pytest.raises(InputError, match="expects float32, got <U"):
        clf.run(np.array([["a", "b", "c", "d"]]))


def test_shared_symbolic_dimension_must_agree(models):
    model = Model(models.two_in_two_out())
    with pytest.raises(InputError, match=r"dimension 'N' is 2 in input 'a' but 3 in input 'b'"):
        model.run({"a": np.ones((2, 3), np.float32), "b": np.ones((3, 3), np.int64)})


def test_nested_lists_are_accepted(clf):
    y = clf.run([[1, 2, 3, 4]])["y"]
    assert y.shape == (1, 3)


def test_ragged_lists_are_refused(clf):
    with pytest.raises(InputError, match="cannot make an array"):
        clf.run([[1, 2, 3, 4], [1, 2]])
