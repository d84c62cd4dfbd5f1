"""Showing or saving the result of ``edge-infer run``: table, JSON, or .npy/.npz."""

from __future__ import annotations

import io
import math
import sys
from typing import TYPE_CHECKING, Any, Mapping

import click
import numpy as np

from ..errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from ..predictions import Prediction

DEFAULT_TOP_K = 5


def _classifier_output(model: Any, outputs: Mapping[str, np.ndarray],
                       top_k: int | None) -> str | None:
    """The output to read class scores from, or None when this is not a classifier."""
    first = next(iter(outputs))
    array = outputs[first]
    if array.dtype.kind not in "fiu" or array.ndim < 1:
        return None
    if model.metadata.is_classifier:
        return first
    if top_k is not None and array.ndim == 2:
        return first
    return None


def predictions(model: Any, outputs: Mapping[str, np.ndarray],
                top_k: int | None) -> list[list[Prediction]] | None:
    name = _classifier_output(model, outputs, top_k)
    if name is None:
        return None
    from ..predictions import top_k as compute_top_k

    return compute_top_k(outputs[name], top_k or DEFAULT_TOP_K, model.metadata.labels,
                         model.metadata.output)


def _json_safe(value: Any) -> Any:
    """Nested lists with NaN/inf as null, so the output is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def to_json(model: Any, sources: list[str], outputs: Mapping[str, np.ndarray],
            preds: list[list[Prediction]] | None, elapsed: float) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": model.location,
        "provider": model.provider,
        "providers": list(model.providers),
        "samples": sources,
        "latency_ms": round(elapsed * 1000, 3),
        "outputs": {name: _json_safe(array.tolist()) for name, array in outputs.items()},
    }
    if preds is not None:
        doc["predictions"] = [[p.to_dict() for p in row] for row in preds]
    return doc


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def to_table(model: Any, sources: list[str], outputs: Mapping[str, np.ndarray],
             preds: list[list[Prediction]] | None, elapsed: float) -> str:
    count = len(preds) if preds is not None else (len(sources) or 1)
    lines = [f"{model.name} on {model.provider}: {count} sample"
             f"{'s' if count != 1 else ''} in {elapsed * 1000:.2f} ms"]
    if preds is not None:
        names = sources if len(sources) == len(preds) else [str(i) for i in range(len(preds))]
        width = max(len("sample"), *(len(n) for n in names))
        k = max(len(row) for row in preds)
        cells = [[f"{p.label} {p.score:.4f}" for p in row] for row in preds]
        cw = max([len(_ordinal(i + 1)) for i in range(k)] + [len(c) for r in cells for c in r])
        header = "sample".ljust(width) + "  " + "  ".join(_ordinal(i + 1).ljust(cw)
                                                         for i in range(k))
        lines.append(header.rstrip())
        for name, row in zip(names, cells):
            lines.append((name.ljust(width) + "  " + "  ".join(c.ljust(cw) for c in row)).rstrip())
        return "\n".join(lines)
    with np.printoptions(precision=5, suppress=True, threshold=200, edgeitems=4, linewidth=100):
        for name, array in outputs.items():
            lines.append(f"{name}: {array.dtype} {list(array.shape)}")
            lines.append(np.array2string(np.asarray(array), separator=", "))
    return "\n".join(lines)


def _npy_bytes(outputs: Mapping[str, np.ndarray], as_npz: bool) -> bytes:
    buf = io.BytesIO()
    if as_npz:
        np.savez(buf, **outputs)
    else:
        np.save(buf, next(iter(outputs.values())), allow_pickle=False)
    return buf.getvalue()


def write_npy(outputs: Mapping[str, np.ndarray], output_path: str | None) -> None:
    single = len(outputs) == 1
    if output_path is None:
        sys.stdout.buffer.write(_npy_bytes(outputs, as_npz=not single))
        sys.stdout.buffer.flush()
        return
    from pathlib import Path

    path = Path(output_path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise UsageError(f"--format npy writes .npz (every output) or .npy (one output); "
                         f"the output path ends in {suffix or 'nothing'}")
    from ..atomic import atomic_open

    if suffix == ".npy" and not single:
        raise UsageError(f"the model has {len(outputs)} outputs ({', '.join(outputs)}); write "
                         "them to an .npz, or pick one with --output-name")
    with atomic_open(path, "wb") as fh:
        fh.write(_npy_bytes(outputs, as_npz=suffix == ".npz"))


def image_output_dir(model: Any, image_dir: str | None) -> Path:
    from pathlib import Path

    return Path(image_dir) if image_dir else Path(f"{model.path.stem}-images")


def _save_image_outputs(model: Any, sources: list[str], outputs: Mapping[str, np.ndarray],
                        image_dir: str | None) -> list[Path] | None:
    """PNG files for the first output when the metadata says it is an image."""
    spec = model.metadata.output
    first = next(iter(outputs))
    if spec is None or spec.kind != "image" or first != model.signature.output_names[0]:
        return None
    from ..image_outputs import save_images

    return save_images(outputs[first], spec, image_output_dir(model, image_dir), sources)


def render_result(model: Any, sources: list[str], outputs: Mapping[str, np.ndarray], *,
                  fmt: str, output_path: str | None, top_k: int | None, elapsed: float,
                  image_dir: str | None = None) -> None:
    if fmt == "npy":
        write_npy(outputs, output_path)
        return
    preds = predictions(model, outputs, top_k)
    images = _save_image_outputs(model, sources, outputs, image_dir)
    if fmt == "json":
        import json

        doc = to_json(model, sources, outputs, preds, elapsed)
        if images is not None:
            doc["images"] = [str(p) for p in images]
        text = json.dumps(doc)
    else:
        text = to_table(model, sources, outputs, preds, elapsed)
        if images is not None:
            text += (f"\nwrote {len(images)} PNG image{'s' if len(images) != 1 else ''} to "
                     f"{images[0].parent}/ ({images[0].name} ...)" if images else "")
    if output_path is None:
        click.echo(text)
    else:
        from ..atomic import write_text

        write_text(output_path, text + "\n")
