"""Image inputs (needs the ``[image]`` extra, Pillow): decode, resize, convert, scale, lay out.

What the model wants comes from its ``edge_infer.preprocess`` metadata, overridden by flags, and
otherwise from the input's static shape: ``[N, H, W, C]`` (NHWC), ``[N, C, H, W]`` (NCHW),
``[N, H, W]`` (grey, no channel axis) or ``[N, H*W*C]`` (flattened, as a dense network takes it).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ExtraMissingError, InputError
from ..metadata import ImagePreprocess
from ..records import Record, replace
from ..signature import TensorSpec, format_shape
from .base import Batch, LoadContext


class ImagePlan(Record):
    """The resolved recipe for one model input."""

    input: str
    height: int | None
    width: int | None
    channels: int
    layout: str  # NHWC, NCHW, NHW (no channel axis) or FLAT
    pre: ImagePreprocess


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ExtraMissingError("reading images", "image", "PIL") from None
    return Image


def _image_input(ctx: LoadContext, pre: ImagePreprocess) -> TensorSpec:
    if pre.input:
        return ctx.signature.input(pre.input)
    inputs = ctx.signature.inputs
    if len(inputs) == 1:
        return inputs[0]
    for spec in inputs:
        if spec.rank in (3, 4):
            return spec
    raise InputError("cannot tell which input takes the image; the model has inputs "
                     + ", ".join(f"{s.name} {format_shape(s.shape)}" for s in inputs))


def _static(d: object) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


def plan_for(ctx: LoadContext) -> ImagePlan:
    """Where the image goes and in which form, from metadata, flags and the input's shape."""
    pre = ctx.image or ImagePreprocess()
    spec = _image_input(ctx, pre)
    shape = spec.shape
    if shape is None:
        raise InputError(f"input {spec.name!r} has no known rank; cannot lay out an image")
    rank = len(shape)
    if rank == 4:
        layout = pre.layout or _guess_layout(shape)
        h_axis, w_axis, c_axis = (1, 2, 3) if layout == "NHWC" else (2, 3, 1)
        height, width = _static(shape[h_axis]), _static(shape[w_axis])
        channels = pre.channels or _static(shape[c_axis]) or 3
    elif rank == 3:
        layout, height, width, channels = "NHW", _static(shape[1]), _static(shape[2]), 1
    elif rank == 2:
        layout, height, width = "FLAT", None, None
        channels = pre.channels or 1
        flat = _static(shape[1])
        if pre.size is None and flat is not None:
            side = int(round((flat / channels) ** 0.5))
            if side * side * channels != flat:
                raise InputError(f"input {spec.name!r} takes {flat} values per sample, which is "
                                 "not a square image; pass --image-size HxW")
            height = width = side
    else:
        raise InputError(f"input {spec.name!r} {format_shape(shape)} does not take images "
                         "(expected rank 2, 3 or 4)")
    if pre.size is not None:
        height, width = pre.size
    if spec.dtype is not None and spec.dtype.kind in "iu" and ctx.image is None:
        pre = replace(pre, scale=1.0, offset=0.0)  # integer inputs take raw pixels
    return ImagePlan(spec.name, height, width, channels, layout, pre)


def _guess_layout(shape: tuple) -> str:
    c_last, c_first = shape[3], shape[1]
    if c_first in (1, 3) and c_last not in (1, 3):
        return "NCHW"
    if c_last in (1, 3, 4):
        return "NHWC"
    if c_first in (1, 3, 4):
        return "NCHW"
    return "NHWC"


_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def decode(path: str, plan: ImagePlan) -> np.ndarray:
    """One image as float32 ``[H, W, C]`` after resize, inversion, scaling and normalisation."""
    Image = _pil()
    try:
        with Image.open(path) as img:
            img.load()
            img = img.convert(_MODES[plan.channels])
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{os.path.basename(path)} is not a readable image ({exc})") from None
    if plan.height and plan.width and img.size != (plan.width, plan.height):
        resample = getattr(Image.Resampling, plan.pre.resize.upper())
        img = img.resize((plan.width, plan.height), resample)
    x = np.asarray(img, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, np.newaxis]
    pre = plan.pre
    if pre.invert:
        x = 255.0 - x
    x = x * np.float32(pre.scale) + np.float32(pre.offset)
    if pre.mean is not None:
        x = x - np.asarray(pre.mean, dtype=np.float32)
    if pre.std is not None:
        x = x / np.asarray(pre.std, dtype=np.float32)
    return x


def _arrange(images: list[np.ndarray], plan: ImagePlan, names: list[str]) -> np.ndarray:
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise InputError("the images have different sizes and the model does not fix one; "
                         "pass --image-size HxW (" + ", ".join(
                             f"{n}: {im.shape[1]}x{im.shape[0]}" for n, im in zip(names, images))
                         + ")")
    batch = np.stack(images)  # N, H, W, C
    if plan.layout == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    elif plan.layout == "NHW":
        batch = batch[..., 0]
    elif plan.layout == "FLAT":
        batch = batch.reshape(batch.shape[0], -1)
    return np.ascontiguousarray(batch)


def load_images(paths: list[str], ctx: LoadContext) -> Batch:
    plan = plan_for(ctx)
    images = [decode(p, plan) for p in paths]
    names = [os.path.basename(p) for p in paths]
    batch = _arrange(images, plan, names)
    spec = ctx.signature.input(plan.input)
    if spec.dtype is not None and spec.dtype != batch.dtype:
        if spec.dtype.kind in "iu":
            batch = np.clip(np.rint(batch), np.iinfo(spec.dtype).min, np.iinfo(spec.dtype).max)
        batch = batch.astype(spec.dtype)
    return Batch({plan.input: batch}, names)


def load_image(path: str, ctx: LoadContext) -> Batch:
    return load_images([path], ctx)
