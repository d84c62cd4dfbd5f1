"""``edge-infer run MODEL INPUT...``: load inputs, run the model, show or save the outputs."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from ..errors import UsageError
from ..records import replace
from . import debug_option
from .options import parse_provider_options, provider_options


def _parse_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    parts = value.lower().replace("×", "x").split("x")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        dims = []
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) < 1:
        raise UsageError(f"--image-size expects HEIGHTxWIDTH like 28x28 (or one number), "
                         f"found {value!r}")
    return dims[0], dims[1]


def _parse_floats(value: str | None, flag: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise UsageError(f"{flag} expects numbers separated by commas (like 0.485,0.456,0.406), "
                         f"found {value!r}") from None


def _image_preprocess(model: Any, flags: dict[str, Any]):
    """The metadata's image recipe with the command-line overrides applied."""
    from ..metadata import ImagePreprocess, MetadataError

    base = model.metadata.preprocess
    pre = base if isinstance(base, ImagePreprocess) else None
    overrides = {k: v for k, v in flags.items() if v is not None}
    if not overrides:
        return pre
    try:
        return replace(pre or ImagePreprocess(), **overrides)
    except MetadataError as exc:
        raise UsageError(str(exc)) from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_path", metavar="MODEL")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@provider_options
@click.option("-b", "--batch-size", type=click.IntRange(min=1), default=None,
              help="Split the samples into runs of at most N.")
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=None,
              help="Classes to show per sample for classifiers (default 5; setting it treats a "
                   "[batch, classes] output as class scores even without metadata).")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json", "npy"]),
              default="table", show_default=True, help="How to print or save the outputs.")
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False), default=None,
              help="Write the result here (.npz/.npy with --format npy) instead of stdout.")
@click.option("--image-dir", default=None, metavar="DIR",
              help="Where PNG files go when the metadata says the output is an image "
                   "(default: MODEL-images/).")
@click.option("--output-name", "output_names", multiple=True, metavar="NAME",
              help="Only compute these outputs (repeatable).")
@click.option("--cast", is_flag=True,
              help="Cast inputs to the model's dtypes even when values change (float64 to "
                   "float32, say).")
@click.option("--image-size", default=None, metavar="HxW", help="Resize images to this size.")
@click.option("--channels", type=click.Choice(["1", "3", "4"]), default=None,
              help="Image channels (1 grey, 3 RGB, 4 RGBA).")
@click.option("--layout", type=click.Choice(["NHWC", "NCHW"]), default=None,
              help="Image tensor layout.")
@click.option("--scale", type=float, default=None,
              help="Multiply pixels (0..255) by this (default 1/255, or the metadata's).")
@click.option("--offset", type=float, default=None, help="Then add this.")
@click.option("--mean", default=None, metavar="M[,M,M]", help="Then subtract per-channel means.")
@click.option("--std", default=None, metavar="S[,S,S]", help="Then divide by per-channel stds.")
@click.option("--invert/--no-invert", default=None,
              help="Invert pixels (255 - p) first, e.g. dark digits on white paper for MNIST.")
@debug_option
def run(model_path: str, inputs: tuple[str, ...], providers: tuple[str, ...],
        provider_option: tuple[str, ...], strict: bool, threads: int | None,
        batch_size: int | None, top_k: int | None, fmt: str, output_path: str | None,
        image_dir: str | None, output_names: tuple[str, ...], cast: bool, image_size: str | None,
        channels: str | None, layout: str | None, scale: float | None, offset: float | None,
        mean: str | None, std: str | None, invert: bool | None) -> None:
    """Run MODEL on INPUT files and print or save the outputs.

    \b
    INPUT is one or more of:
      .npy            one array for a single-input model
      .npz            arrays keyed by input name (needed for several inputs)
      .json           a nested list, or an object keyed by input name
      .csv/.tsv       numeric rows, one sample per row
      image files     .png .jpg .bmp .pgm ... (needs edge-infer[image]); a folder of them
      .txt / "text"   for models with a text vocabulary: one example per line, or a string
      random:N[:SEED] N samples of standard normal noise (a generator's latent vectors)
      -               standard input (.npy/.npz bytes or JSON)
    When the metadata says the output is an image (generators, autoencoders), each
    sample is also written as a PNG file to --image-dir.
    Several inputs run as one batch; a single sample gets its batch axis added.

    \b
    Examples:
      edge-infer run model.onnx digit.png --top-k 3
      edge-infer run model.onnx images/ --format json
      edge-infer run model.onnx x.npz --format npy --output out.npz
      edge-infer run spam.onnx "WIN a FREE prize now"
      edge-infer run generator.onnx random:16 --image-dir samples/
      python make_batch.py | edge-infer run model.onnx -
    """
    from ..inputs import LoadContext, load_inputs
    from ..model import Model
    from .render import render_result

    if fmt == "npy" and output_path is None and sys.stdout.isatty():
        raise UsageError("--format npy writes binary data; pass --output out.npz or redirect "
                         "standard output")
    model = Model(model_path, list(providers) or None, threads=threads,
                  provider_options=parse_provider_options(provider_option), strict=strict,
                  cast="force" if cast else "safe")
    flags = {"size": _parse_size(image_size), "channels": int(channels) if channels else None,
             "layout": layout, "scale": scale, "offset": offset,
             "mean": _parse_floats(mean, "--mean"), "std": _parse_floats(std, "--std"),
             "invert": invert}
    ctx = LoadContext(model.signature, model.metadata, image=_image_preprocess(model, flags))
    batch = load_inputs(list(inputs), ctx)
    started = time.perf_counter()
    outputs = model.run(batch.arrays, outputs=list(output_names) or None,
                        batch_size=batch_size, cast="force" if cast else batch.cast)
    elapsed = time.perf_counter() - started
    render_result(model, batch.sources, outputs, fmt=fmt, output_path=output_path,
                  top_k=top_k, elapsed=elapsed, image_dir=image_dir)
