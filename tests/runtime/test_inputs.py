"""Input loaders: every format ``edge-infer run`` accepts, merged into one batch."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from edge_infer.runtime import ImagePreprocess, InputError, Model
from edge_infer.runtime.errors import UnknownNameError
from edge_infer.runtime.inputs import LoadContext, load_inputs
from edge_infer.runtime.inputs.text import Tokenizer
from edge_infer.runtime.metadata import TextPreprocess


def ctx_for(path, image=None, stdin=None) -> LoadContext:
    model = Model(path)
    pre = model.metadata.preprocess
    return LoadContext(model.signature, model.metadata,
                       image=image or (pre if isinstance(pre, ImagePreprocess) else None),
                       stdin=stdin)


def test_npy_single_and_batched(models, tmp_path):
    ctx = ctx_for(models.classifier())
    np.save(tmp_path / "one.npy", np.ones(4, np.float32))
    np.save(tmp_path / "many.npy", np.zeros((3, 4), np.float32))
    batch = load_inputs([str(tmp_path / "one.npy"), str(tmp_path / "many.npy")], ctx)
    assert batch.arrays["x"].shape == (4, 4)
    assert batch.sources == ["one.npy", "many.npy[0]", "many.npy[1]", "many.npy[2]"]


def test_npz_by_input_name_for_several_inputs(models, tmp_path):
    ctx = ctx_for(models.two_in_two_out())
    np.savez(tmp_path / "in.npz", a=np.ones((2, 3), np.float32), b=np.ones((2, 3), np.int64))
    batch = load_inputs([str(tmp_path / "in.npz")], ctx)
    assert set(batch.arrays) == {"a", "b"} and batch.sources == ["in.npz[0]", "in.npz[1]"]


def test_npz_with_one_unnamed_array(models, tmp_path):
    ctx = ctx_for(models.classifier())
    np.savez(tmp_path / "in.npz", np.ones((2, 4), np.float32))
    assert load_inputs([str(tmp_path / "in.npz")], ctx).arrays["x"].shape == (2, 4)


def test_npy_for_a_multi_input_model_says_use_npz(models, tmp_path):
    ctx = ctx_for(models.two_in_two_out())
    np.save(tmp_path / "a.npy", np.ones((1, 3), np.float32))
    with pytest.raises(InputError, match="takes 2 inputs .* use an .npz"):
        load_inputs([str(tmp_path / "a.npy")], ctx)


def test_json_list_and_object(models, tmp_path):
    (tmp_path / "list.json").write_text("[[1, 2, 3, 4], [5, 6, 7, 8]]")
    batch = load_inputs([str(tmp_path / "list.json")], ctx_for(models.classifier()))
    assert batch.arrays["x"].shape == (2, 4) and batch.cast == "literal"
    (tmp_path / "obj.json").write_text(json.dumps({"a": [[1, 2, 3]], "b": [[1, 2, 3]]}))
    batch = load_inputs([str(tmp_path / "obj.json")], ctx_for(models.two_in_two_out()))
    assert set(batch.arrays) == {"a", "b"}


def test_bad_json(models, tmp_path):
    (tmp_path / "bad.json").write_text("[[1, 2,")
    with pytest.raises(InputError, match="bad.json is not valid JSON"):
        load_inputs([str(tmp_path / "bad.json")], ctx_for(models.classifier()))
    (tmp_path / "ragged.json").write_text("[[1, 2, 3, 4], [1]]")
    with pytest.raises(InputError, match="ragged"):
        load_inputs([str(tmp_path / "ragged.json")], ctx_for(models.classifier()))


def test_csv_rows_with_a_header(models, tmp_path):
    (tmp_path / "rows.csv").write_text("a,b,c,d\n1,2,3,4\n5,6,7,8\n")
    batch = load_inputs([str(tmp_path / "rows.csv")], ctx_for(models.classifier()))
    np.testing.assert_array_equal(batch.arrays["x"], [[1, 2, 3, 4], [5, 6, 7, 8]])
    assert batch.sources == ["rows.csv:1", "rows.csv:2"]


def test_corrupt_npy(models, tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match="bad.npy is not a valid .npy file"):
        load_inputs([str(tmp_path / "bad.npy")], ctx_for(models.classifier()))


def test_stdin_npy_and_json(models):
    buf = io.BytesIO()
    np.save(buf, np.ones((2, 4), np.float32))
    ctx = ctx_for(models.classifier(), stdin=io.BytesIO(buf.getvalue()))
    assert load_inputs(["-"], ctx).arrays["x"].shape == (2, 4)
    ctx = ctx_for(models.classifier(), stdin=io.BytesIO(b"[[1, 2, 3, 4]]"))
    assert load_inputs(["-"], ctx).arrays["x"].shape == (1, 4)
    ctx = ctx_for(models.classifier(), stdin=io.BytesIO(b""))
    with pytest.raises(InputError, match="standard input is empty"):
        load_inputs(["-"], ctx)


def test_unknown_suffix_and_missing_file(models, tmp_path):
    (tmp_path / "data.xyz").write_text("1")
    ctx = ctx_for(models.classifier())
    with pytest.raises(UnknownNameError, match="unknown input file type '.xyz'; known: .*.npy"):
        load_inputs([str(tmp_path / "data.xyz")], ctx)
    with pytest.raises(InputError, match="does not exist"):
        load_inputs([str(tmp_path / "nope.npy")], ctx)


def test_samples_of_different_shapes_cannot_be_batched(models, tmp_path):
    ctx = ctx_for(models.dynamic())
    np.save(tmp_path / "a.npy", np.ones((1, 2, 3), np.float32))
    np.save(tmp_path / "b.npy", np.ones((1, 5, 3), np.float32))
    with pytest.raises(InputError, match="do not have one shape"):
        load_inputs([str(tmp_path / "a.npy"), str(tmp_path / "b.npy")], ctx)


# -- images ------------------------------------------------------------------------------

def test_grey_png_into_nhwc_with_default_scaling(models, write_png):
    png = write_png("g.png", np.array([[0, 255, 51, 102]] * 4))
    batch = load_inputs([str(png)], ctx_for(models.pixels(shape=("N", 4, 4, 1))))
    x = batch.arrays["image"]
    assert x.shape == (1, 4, 4, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0, :, 0], [0, 1, 0.2, 0.4], rtol=1e-6)


def test_metadata_drives_scale_offset_and_invert(models, write_png):
    meta = {"edge_infer.preprocess": json.dumps({"kind": "image", "scale": 2 / 255,
                                                 "offset": -1, "invert": True})}
    png = write_png("g.png", np.full((4, 4), 255))
    x = load_inputs([str(png)], ctx_for(models.pixels(metadata=meta))).arrays["image"]
    np.testing.assert_allclose(x, -1.0)  # 255 inverted is 0, then 0 * s - 1


def test_rgb_into_nchw_with_mean_and_std(models, write_png):
    img = np.zeros((4, 4, 3))
    img[..., 0], img[..., 1], img[..., 2] = 255, 0, 51
    png = write_png("rgb.png", img)
    pre = ImagePreprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x = load_inputs([str(png)], ctx_for(models.pixels(shape=("N", 3, 4, 4)), image=pre)
                    ).arrays["image"]
    assert x.shape == (1, 3, 4, 4)
    np.testing.assert_allclose(x[0, :, 0, 0], [1.0, -1.0, -0.6], rtol=1e-5)


def test_rgb_image_converted_to_grey_and_resized(models, write_png):
    png = write_png("big.png", np.full((16, 12, 3), 255))
    x = load_inputs([str(png)], ctx_for(models.pixels(shape=("N", 4, 4, 1)))).arrays["image"]
    assert x.shape == (1, 4, 4, 1)
    np.testing.assert_allclose(x, 1.0)


def test_flat_input_takes_a_flattened_square_image(models, write_png):
    png = write_png("g.png", np.arange(64).reshape(8, 8) * 3)
    x = load_inputs([str(png)], ctx_for(models.pixels(shape=("N", 64)))).arrays["image"]
    assert x.shape == (1, 64)
    np.testing.assert_allclose(x[0, :3], np.array([0, 3, 6]) / 255, rtol=1e-6)


def test_uint8_input_gets_raw_pixels(models, write_png):
    from onnx import TensorProto

    png = write_png("g.png", np.full((4, 4), 200))
    path = models.pixels(shape=("N", 4, 4, 1), dtype=TensorProto.UINT8)
    x = load_inputs([str(png)], ctx_for(path)).arrays["image"]
    assert x.dtype == np.uint8 and (x == 200).all()


def test_folder_and_several_images_run_as_one_batch(models, write_png, tmp_path):
    for i in range(3):
        write_png(f"img{i}.png", np.full((4, 4), i * 100))
    (tmp_path / "notes.txt").write_text("ignored")
    batch = load_inputs([str(tmp_path)], ctx_for(models.pixels()))
    assert batch.arrays["image"].shape == (3, 4, 4, 1)
    assert batch.sources == ["img0.png", "img1.png", "img2.png"]


def test_dynamic_size_needs_one_size_or_a_flag(models, write_png):
    a = write_png("a.png", np.zeros((4, 4)))
    b = write_png("b.png", np.zeros((6, 6)))
    path = models.pixels(shape=("N", "H", "W", 1))
    with pytest.raises(InputError, match="different sizes.*--image-size"):
        load_inputs([str(a), str(b)], ctx_for(path))
    batch = load_inputs([str(a), str(b)], ctx_for(path, image=ImagePreprocess(size=(5, 5))))
    assert batch.arrays["image"].shape == (2, 5, 5, 1)


def test_not_an_image(models, tmp_path):
    (tmp_path / "fake.png").write_text("not a png")
    pytest.importorskip("PIL")
    with pytest.raises(InputError, match="fake.png is not a readable image"):
        load_inputs([str(tmp_path / "fake.png")], ctx_for(models.pixels()))


def test_images_without_pillow_name_the_extra(models, write_png, monkeypatch):
    import sys

    from edge_infer.runtime.errors import ExtraMissingError

    png = write_png("a.png", np.zeros((4, 4)))
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ExtraMissingError, match=r"pip install 'edge-infer\[image\]'"):
        load_inputs([str(png)], ctx_for(models.pixels()))


# -- text --------------------------------------------------------------------------------

def test_tokenizer_matches_keras_text_vectorization_rules():
    tok = Tokenizer(TextPreprocess(vocabulary=("", "[UNK]", "free", "prize", "don't", "dont")))
    # ASCII lowercase, ASCII punctuation stripped (so "don't" becomes "dont"), unknown -> 1.
    assert tok.ids("FREE prize!! Don't\tstop") == [2, 3, 5, 1]
    assert tok.encode(["free", "prize free prize free"], 3).tolist() == [[2, 0, 0], [3, 2, 3]]
    assert Tokenizer(TextPreprocess(vocabulary=("", "[UNK]", "a", "b"), split="character",
                                    standardize="none")).ids("ab?") == [2, 3, 1]


def test_raw_string_and_txt_file_for_a_text_model(models, tmp_path):
    ctx = ctx_for(models.text_model())
    batch = load_inputs(["Hello friend", "FREE prize"], ctx)
    assert batch.arrays["ids"].tolist() == [[4, 5, 0, 0, 0, 0], [2, 3, 0, 0, 0, 0]]
    (tmp_path / "msgs.txt").write_text("hello\n\nwin a free prize\n")
    batch = load_inputs([str(tmp_path / "msgs.txt")], ctx)
    assert batch.arrays["ids"].tolist() == [[4, 0, 0, 0, 0, 0], [1, 1, 2, 3, 0, 0]]
    assert batch.sources == ["msgs.txt:1", "msgs.txt:3"]


def test_json_strings_for_a_text_model(models, tmp_path):
    (tmp_path / "t.json").write_text('["free prize", "hello"]')
    batch = load_inputs([str(tmp_path / "t.json")], ctx_for(models.text_model()))
    assert batch.arrays["ids"].shape == (2, 6)


def test_text_for_a_model_without_vocabulary(models, tmp_path):
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(InputError, match="no text vocabulary"):
        load_inputs([str(tmp_path / "t.txt")], ctx_for(models.classifier()))


def test_extra_check_names_the_first_missing_module():
    from edge_infer.runtime.errors import ExtraMissingError

    ExtraMissingError.require("anything", "train", "numpy", "json")  # present: no error
    with pytest.raises(ExtraMissingError, match=r"edge-infer quantize needs the "
                                                r"'no_such_module_x' module from the train extra"):
        ExtraMissingError.require("edge-infer quantize", "train", "numpy", "no_such_module_x")
