"""Build ``examples/lines.onnx`` and its sample images: the runtime's demo until training lands.

A real, if tiny, network: three hand-set 3x3 convolution filters respond to horizontal, vertical
and diagonal strokes; global max pooling and a softmax turn the strongest response into a class.
It carries the full metadata contract (task, labels, image preprocessing), so
``edge-infer run examples/lines.onnx examples/images/`` shows labelled predictions.

Needs the ``dev`` extra (onnx, Pillow)::

    python examples/make_lines_model.py [--out examples]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

LABELS = ["horizontal", "vertical", "diagonal"]
SIZE = 16


def filters() -> np.ndarray:
    h = np.array([[-1, -1, -1], [2, 2, 2], [-1, -1, -1]], np.float32)
    d = np.array([[2, -1, -1], [-1, 2, -1], [-1, -1, 2]], np.float32)
    return np.stack([h, h.T, d])[:, np.newaxis]  # [3 filters, 1 channel, 3, 3]


def build_model():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "filters"], ["response"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalMaxPool", ["response"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["strength"]),
        helper.make_node("Softmax", ["strength"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "lines",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", SIZE, SIZE, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(filters(), "filters")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="edge-infer-examples", producer_version="1")
    model.ir_version = 8
    helper.set_model_props(model, {
        "edge_infer.metadata": "1",
        "edge_infer.task": "classification",
        "edge_infer.labels": json.dumps(LABELS),
        "edge_infer.preprocess": json.dumps({"kind": "image", "size": [SIZE, SIZE],
                                             "channels": 1, "layout": "NHWC",
                                             "scale": 1 / 255, "offset": 0.0}),
        "edge_infer.output": json.dumps({"kind": "probabilities"}),
    })
    onnx.checker.check_model(model)
    return model


def sample_images() -> dict[str, np.ndarray]:
    """White strokes on black, 16x16, one per class (and a thicker, off-centre variant)."""
    images = {}
    img = np.zeros((SIZE, SIZE), np.uint8)
    img[5, 2:14] = 255
    images["horizontal.png"] = img
    images["vertical.png"] = np.ascontiguousarray(img.T)
    diag = np.zeros((SIZE, SIZE), np.uint8)
    for i in range(2, 14):
        diag[i, i] = 255
    images["diagonal.png"] = diag
    thick = np.zeros((SIZE, SIZE), np.uint8)
    thick[3:13, 10] = 200
    images["vertical_faint.png"] = thick
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    out = parser.parse_args().out
    import onnx
    from PIL import Image

    (out / "images").mkdir(parents=True, exist_ok=True)
    onnx.save(build_model(), str(out / "lines.onnx"))
    for name, array in sample_images().items():
        Image.fromarray(array, mode="L").save(out / "images" / name)
    print(f"wrote {out / 'lines.onnx'} and {len(sample_images())} images in {out / 'images'}")


if __name__ == "__main__":
    main()
