"""What a model path that is not an ONNX file is, said in the error it gets.

The usual mistakes: the Keras model of a run folder instead of its export
(``edge-infer run runs/cnn-digits/model.keras``), the run folder itself, a TensorFlow Lite or
PyTorch file, or the input passed where the model goes. "does not parse as an ONNX ModelProto:
field number 0 at byte 3" is true of all of them and helps with none; naming what the file is
and the command that makes an ONNX model of it does.

Recognised by the first bytes (and a zip archive's member names), not by the suffix: a
``model.onnx`` that is really a Keras archive is named for what it is. Error paths only.
"""

from __future__ import annotations

import os
from pathlib import Path

_HEAD = 16  # bytes read to recognise a format

# (magic, offset, what the file is)
_MAGIC = (
    (b"\x89HDF\r\n\x1a\n", 0, "keras-h5"),
    (b"TFL3", 4, "tflite"),
    (b"\x89PNG\r\n\x1a\n", 0, "a PNG image"),
    (b"\xff\xd8\xff", 0, "a JPEG image"),
    (b"BM", 0, "a BMP image"),
    (b"GIF8", 0, "a GIF image"),
    (b"\x93NUMPY", 0, "a NumPy array (.npy)"),
)


def _zip_kind(path: Path) -> str | None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return None
    base = {n.rsplit("/", 1)[-1] for n in names}
    if "config.json" in base and ("metadata.json" in base or "model.weights.h5" in base):
        return "keras"
    if "data.pkl" in base:
        return "torch"
    if names and all(n.endswith(".npy") for n in names):
        return "a NumPy archive (.npz)"
    return None


def describe_file(path: str | os.PathLike[str]) -> str | None:
    """The error for a file that is a known non-ONNX format, or None."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
    except OSError:
        return None
    kind = next((k for magic, at, k in _MAGIC if head[at:at + len(magic)] == magic), None)
    if kind is None and head.startswith(b"PK\x03\x04"):
        kind = _zip_kind(path)
    if kind is None and head[:1] == b"\x80" and path.suffix in (".pt", ".pth"):
        kind = "torch"  # a PyTorch file saved with the legacy pickle format
    if kind in ("keras", "keras-h5"):
        what = "a Keras model" if kind == "keras" else "an HDF5 file (a Keras .h5 model?)"
        return f"{path} is {what}, not ONNX: convert it with `edge-infer export {path}`"
    if kind == "tflite":
        return (f"{path} is a TensorFlow Lite model; edge-infer runs ONNX models (`edge-infer "
                "export` converts the Keras model it came from)")
    if kind == "torch":
        return f"{path} is a PyTorch model; export it to ONNX with torch.onnx.export"
    if kind is not None:
        return f"{path} is {kind}, not an ONNX model"
    return None


def describe_folder(path: str | os.PathLike[str]) -> str:
    """The error for a folder given as a model: the ONNX files in it, or what it holds."""
    folder = Path(path)
    try:
        models = sorted(p.name for p in folder.iterdir() if p.suffix == ".onnx")
    except OSError:
        models = []
    if models:
        # the quantized model first: it is what the pipeline deploys
        models.sort(key=lambda name: (name == "model.onnx", name))
        shown = " or ".join(str(folder / m) for m in models[:2])
        return f"{folder} is a folder; expected an .onnx model file, such as {shown}"
    if (folder / "saved_model.pb").exists():
        return (f"{folder} is a TensorFlow SavedModel; edge-infer runs ONNX models (tf2onnx "
                f"converts it: python -m tf2onnx.convert --saved-model {folder} --output "
                "model.onnx)")
    if (folder / "model.keras").exists():
        return (f"{folder} is a run folder without an ONNX model; make one with "
                f"`edge-infer export {folder}`")
    return f"{folder} is a folder; expected an .onnx model file"
